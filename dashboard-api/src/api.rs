//! The Prometheus HTTP API endpoints, as async functions over a D1 handle and
//! parsed parameters.

use crate::config::Kept;
use crate::error::ApiError;
use crate::params::Params;
use crate::query::{self, eval, select, Times};
use crate::{catalog, json_api, prom, store};
use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::Expr;
use worker::D1Database;

/// Series one query may read, over all its selectors.
pub const MAX_SERIES_PER_QUERY: usize = 10_000;

/// A response body and, for a query, when the data it read ends: the end of
/// its last bucket (which decides whether it may be cached).
pub struct Answer {
    pub body: serde_json::Value,
    pub until: Option<f64>,
}

impl From<serde_json::Value> for Answer {
    fn from(body: serde_json::Value) -> Answer {
        Answer { body, until: None }
    }
}

/// The end of the last bucket of `resolution` that starts before `end`.
fn data_until(end: f64, resolution: i64) -> f64 {
    (end / resolution as f64).ceil() * resolution as f64
}

/// `GET|POST /api/v1/query`: an instant query.
pub async fn query(db: &D1Database, tenant: &str, params: &Params, kept: &Kept, now: f64) -> Result<Answer, ApiError> {
    let expr = query::parse(params.required("query")?)?;
    let t = params.time("time", now)?;
    let (mut steps, resolution) = evaluate(db, tenant, &expr, Times::instant(t), kept, now).await?;
    let (_, value) = steps.pop().ok_or_else(|| ApiError::Execution("internal: no evaluation time".into()))?;
    Ok(Answer { body: prom::success(prom::instant(&value, t)), until: Some(data_until(t, resolution)) })
}

/// `GET|POST /api/v1/query_range`: a query evaluated from `start` to `end`
/// every `step`.
pub async fn query_range(db: &D1Database, tenant: &str, params: &Params, kept: &Kept, now: f64) -> Result<Answer, ApiError> {
    let expr = query::parse(params.required("query")?)?;
    let start = params.required_time("start")?;
    let end = params.required_time("end")?;
    let step = params.duration("step")?;
    let (steps, resolution) = evaluate(db, tenant, &expr, Times::range(start, end, step)?, kept, now).await?;
    Ok(Answer { body: prom::success(prom::matrix(&steps)), until: Some(data_until(end, resolution)) })
}

/// Fetches what `expr` selects at the resolution that serves `times` (with
/// retention as it is at `now`), then evaluates it at each time. Returns
/// the values and the resolution read.
async fn evaluate(
    db: &D1Database,
    tenant: &str,
    expr: &Expr,
    times: Times,
    kept: &Kept,
    now: f64,
) -> Result<(Vec<(f64, eval::Value)>, i64), ApiError> {
    let selections = select::selections(expr)?;
    let default = times.default_window();
    let windows: Vec<f64> = selections.iter().map(|s| s.range_s.unwrap_or(default)).collect();
    let resolution = times.resolution(&windows, kept, now);
    let mut fetched = Vec::with_capacity(selections.len());
    let mut series_read = 0;
    for sel in selections {
        let from = times.start - query::window(sel.range_s, default, resolution);
        let series = store::fetch(db, tenant, &sel, resolution, from, times.end, MAX_SERIES_PER_QUERY - series_read).await?;
        series_read += series.len();
        fetched.push((sel, series));
    }
    let env = eval::Env { fetched: &fetched, default_window: default, resolution };
    let values = times.each().into_iter().map(|t| Ok((t, eval::eval(expr, t, &env)?))).collect::<Result<_, ApiError>>()?;
    Ok((values, resolution))
}

/// `/api/v1/series`: the label sets of the series `match[]` selects.
pub async fn series(db: &D1Database, tenant: &str, params: &Params) -> Result<serde_json::Value, ApiError> {
    let matches = params.all("match[]");
    if matches.is_empty() {
        return Err(ApiError::BadData("no match[] parameter provided".into()));
    }
    let selectors = catalog::selectors(&matches)?;
    Ok(prom::success(catalog::series_json(&store::catalog(db, tenant).await?, &selectors)))
}

/// `/api/v1/labels`: label names, of the series `match[]` selects if given.
pub async fn labels(db: &D1Database, tenant: &str, params: &Params) -> Result<serde_json::Value, ApiError> {
    let selectors = catalog::selectors(&params.all("match[]"))?;
    Ok(prom::success(serde_json::json!(catalog::label_names(&store::catalog(db, tenant).await?, &selectors))))
}

/// The label name of a `/api/v1/label/<name>/values` path, if it is one
/// (a name of at least one character).
pub fn label_of(path: &str) -> Option<&str> {
    path.strip_prefix("/api/v1/label/")?.strip_suffix("/values").filter(|name| !name.is_empty())
}

/// `/api/v1/label/<name>/values`.
pub async fn label_values(db: &D1Database, tenant: &str, label: &str, params: &Params) -> Result<serde_json::Value, ApiError> {
    let selectors = catalog::selectors(&params.all("match[]"))?;
    Ok(prom::success(serde_json::json!(catalog::label_values(&store::catalog(db, tenant).await?, &selectors, label))))
}

/// `/api/v1/metadata`, of every metric or of `metric`.
pub async fn metadata(db: &D1Database, tenant: &str, params: &Params) -> Result<serde_json::Value, ApiError> {
    Ok(prom::success(catalog::metadata(&store::catalog(db, tenant).await?, params.get("metric"))))
}

/// `GET /api/v1/json/metrics`.
pub async fn json_metrics(db: &D1Database, tenant: &str) -> Result<serde_json::Value, ApiError> {
    Ok(json_api::metrics(&store::catalog(db, tenant).await?))
}

/// `GET /api/v1/json/series?metric=…`.
pub async fn json_series(db: &D1Database, tenant: &str, params: &Params) -> Result<serde_json::Value, ApiError> {
    Ok(json_api::series(&store::catalog(db, tenant).await?, params.required("metric")?))
}

/// `GET /api/v1/json/percentiles?metric=…&quantiles=…&start=…&end=…&step=…&label.<name>=<value>`:
/// by default the last hour at a one-minute step, quantiles 0.5, 0.9, 0.99.
pub async fn json_percentiles(db: &D1Database, tenant: &str, params: &Params, kept: &Kept, now: f64) -> Result<Answer, ApiError> {
    let metric = params.required("metric")?;
    let quantiles = json_api::parse_quantiles(params.get("quantiles").unwrap_or("0.5,0.9,0.99"))?;
    let step = if params.get("step").is_some() { params.duration("step")? } else { 60.0 };
    let end = params.time("end", now)?;
    let start = params.time("start", end - 3600.0)?;
    let times = Times::range(start, end, step)?;
    let matchers = params
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("label.").map(|name| Matcher::new(MatchOp::Equal, name, v)))
        .collect();
    let sel = select::Selection { name: metric.to_owned(), matchers, quantile: None, range_s: None };
    let resolution = times.resolution(&[step], kept, now);
    let from = times.start - query::window(None, step, resolution);
    let series = store::fetch(db, tenant, &sel, resolution, from, times.end, MAX_SERIES_PER_QUERY).await?;
    let series: Vec<_> = series.into_iter().filter(|s| s.field == select::Field::Value).collect();
    Ok(Answer { body: json_api::percentiles(metric, &series, &times, &quantiles), until: Some(data_until(end, resolution)) })
}

/// `GET /api/v1/status/buildinfo`, which Grafana reads to learn the flavour.
pub fn buildinfo() -> serde_json::Value {
    prom::success(serde_json::json!({
        "version": "2.53.0",
        "revision": env!("CARGO_PKG_VERSION"),
        "branch": "telemetry-pipeline",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_paths_name_one_label_or_none() {
        assert_eq!(label_of("/api/v1/label/route/values"), Some("route"));
        assert_eq!(label_of("/api/v1/label/__name__/values"), Some("__name__"));
        // Shorter than prefix and suffix together: once sliced out of range.
        assert_eq!(label_of("/api/v1/label/values"), None);
        assert_eq!(label_of("/api/v1/label//values"), None);
        assert_eq!(label_of("/api/v1/labels"), None);
    }
}
