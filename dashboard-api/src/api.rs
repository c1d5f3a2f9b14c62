//! The Prometheus HTTP API endpoints, as async functions over a D1 handle and
//! parsed parameters.

use crate::budget::{self, Limits};
use crate::config::Kept;
use crate::error::ApiError;
use crate::params::Params;
use crate::query::{self, eval, plan, select, Times};
use crate::{catalog, json_api, prom, store};
use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::Expr;
use proto::d1::Db;

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
pub async fn query(db: &Db, tenant: &str, params: &Params, kept: &Kept, limits: &Limits, now: f64) -> Result<Answer, ApiError> {
    let expr = query::parse(params.required("query")?)?;
    let t = params.time("time", now)?;
    let (mut steps, resolution) = evaluate(db, tenant, &expr, Times::instant(t), kept, limits, now).await?;
    let (_, value) = steps.pop().ok_or_else(|| ApiError::Execution("internal: no evaluation time".into()))?;
    Ok(Answer { body: prom::success(prom::instant(&value, t)), until: Some(data_until(t, resolution)) })
}

/// `GET|POST /api/v1/query_range`: a query evaluated from `start` to `end`
/// every `step`.
pub async fn query_range(db: &Db, tenant: &str, params: &Params, kept: &Kept, limits: &Limits, now: f64) -> Result<Answer, ApiError> {
    let expr = query::parse(params.required("query")?)?;
    let start = params.required_time("start")?;
    let end = params.required_time("end")?;
    let step = params.duration("step")?;
    let (steps, resolution) = evaluate(db, tenant, &expr, Times::range(start, end, step)?, kept, limits, now).await?;
    Ok(Answer { body: prom::success(prom::matrix(&steps)), until: Some(data_until(end, resolution)) })
}

/// Fetches what `expr` selects at the resolution that serves `times` (with
/// retention as it is at `now`), then evaluates it at each time. Returns
/// the values and the resolution read.
async fn evaluate(
    db: &Db,
    tenant: &str,
    expr: &Expr,
    times: Times,
    kept: &Kept,
    limits: &Limits,
    now: f64,
) -> Result<(Vec<(f64, eval::Value)>, i64), ApiError> {
    let plan = plan::lower(expr)?;
    let selections = plan.selections;
    budget::selectors(selections.len())?;
    let default = times.default_window();
    let windows: Vec<f64> = selections.iter().map(|s| s.range_s.unwrap_or(default)).collect();
    let resolution = times.resolution(&windows, kept, now);
    let from: Vec<f64> = selections.iter().map(|sel| times.start - query::window(sel.range_s, default, resolution)).collect();
    let series = store::fetch(db, tenant, &selections, &from, resolution, times.end, limits).await?;
    let fetched: Vec<_> = selections.into_iter().zip(series).collect();
    let env = eval::Env { fetched: &fetched, default_window: default, resolution };
    let values = times.each().into_iter().map(|t| Ok((t, eval::eval(&plan.root, t, &env)?))).collect::<Result<_, ApiError>>()?;
    Ok((values, resolution))
}

/// The catalog rows the catalog endpoints read for `match[]`: only the
/// names the selectors name, if they all do; at most
/// [`budget::MAX_CATALOG_ROWS`], and whether that cut the answer.
async fn catalog_for(db: &Db, tenant: &str, selectors: &[promql_parser::label::Matchers]) -> Result<(Vec<catalog::Entry>, bool), ApiError> {
    let names = catalog::names(selectors);
    store::catalog(db, tenant, names.as_deref(), budget::MAX_CATALOG_ROWS).await
}

/// Prometheus' `limit` parameter of the catalog endpoints: at most that
/// many items (0 or absent: no limit).
fn limit(params: &Params) -> Result<usize, ApiError> {
    match params.get("limit").filter(|v| !v.is_empty()) {
        None => Ok(0),
        Some(v) => v.parse().map_err(|_| ApiError::BadData(format!("invalid parameter \"limit\": cannot parse {v:?} to a valid limit"))),
    }
}

/// A catalog answer cut at `limit`, with Prometheus' warning if that or
/// the rows budget cut it.
fn cut<T: serde::Serialize>(items: Vec<T>, limit: usize, rows_cut: bool) -> serde_json::Value {
    let (items, limited) = catalog::limited(items, limit);
    let warnings = if limited || rows_cut { vec![prom::TRUNCATED.to_string()] } else { Vec::new() };
    prom::success_with(serde_json::json!(items), &warnings)
}

/// `/api/v1/series`: the label sets of the series `match[]` selects.
pub async fn series(db: &Db, tenant: &str, params: &Params) -> Result<serde_json::Value, ApiError> {
    let matches = params.all("match[]");
    if matches.is_empty() {
        return Err(ApiError::BadData("no match[] parameter provided".into()));
    }
    let selectors = catalog::selectors(&matches)?;
    let (entries, rows_cut) = catalog_for(db, tenant, &selectors).await?;
    Ok(cut(catalog::series_json(&entries, &selectors), limit(params)?, rows_cut))
}

/// `/api/v1/labels`: label names, of the series `match[]` selects if given.
pub async fn labels(db: &Db, tenant: &str, params: &Params) -> Result<serde_json::Value, ApiError> {
    let selectors = catalog::selectors(&params.all("match[]"))?;
    let (entries, rows_cut) = catalog_for(db, tenant, &selectors).await?;
    Ok(cut(catalog::label_names(&entries, &selectors), limit(params)?, rows_cut))
}

/// The label name of a `/api/v1/label/<name>/values` path, if it is one
/// (a name of at least one character).
pub fn label_of(path: &str) -> Option<&str> {
    path.strip_prefix("/api/v1/label/")?.strip_suffix("/values").filter(|name| !name.is_empty())
}

/// `/api/v1/label/<name>/values`.
pub async fn label_values(db: &Db, tenant: &str, label: &str, params: &Params) -> Result<serde_json::Value, ApiError> {
    let selectors = catalog::selectors(&params.all("match[]"))?;
    let (entries, rows_cut) = catalog_for(db, tenant, &selectors).await?;
    Ok(cut(catalog::label_values(&entries, &selectors, label), limit(params)?, rows_cut))
}

/// `/api/v1/metadata`, of every metric or of `metric`.
pub async fn metadata(db: &Db, tenant: &str, params: &Params) -> Result<serde_json::Value, ApiError> {
    let names = params.get("metric").map(crate::query::select::catalog_names);
    let (entries, rows_cut) = store::catalog(db, tenant, names.as_deref(), budget::MAX_CATALOG_ROWS).await?;
    let warnings = if rows_cut { vec![prom::TRUNCATED.to_string()] } else { Vec::new() };
    Ok(prom::success_with(catalog::metadata(&entries, params.get("metric")), &warnings))
}

/// `GET /api/v1/json/metrics`.
pub async fn json_metrics(db: &Db, tenant: &str) -> Result<serde_json::Value, ApiError> {
    Ok(json_api::metrics(&store::metrics(db, tenant).await?))
}

/// `GET /api/v1/json/series?metric=…`.
pub async fn json_series(db: &Db, tenant: &str, params: &Params) -> Result<serde_json::Value, ApiError> {
    let metric = params.required("metric")?;
    let (entries, _) = store::catalog(db, tenant, Some(&[metric.to_owned()]), budget::MAX_CATALOG_ROWS).await?;
    Ok(json_api::series(&entries, metric))
}

/// `GET /api/v1/json/percentiles?metric=…&quantiles=…&start=…&end=…&step=…&label.<name>=<value>`:
/// by default the last hour at a one-minute step, quantiles 0.5, 0.9, 0.99.
pub async fn json_percentiles(db: &Db, tenant: &str, params: &Params, kept: &Kept, limits: &Limits, now: f64) -> Result<Answer, ApiError> {
    let metric = params.required("metric")?;
    let quantiles = json_api::parse_quantiles(params.get("quantiles").unwrap_or("0.5,0.9,0.99"))?;
    budget::quantiles(quantiles.len())?;
    let step = if params.get("step").is_some() { params.duration("step")? } else { 60.0 };
    let end = params.time("end", now)?;
    let start = params.time("start", end - 3600.0)?;
    let times = Times::range(start, end, step)?;
    let matchers = params.iter().filter_map(|(k, v)| k.strip_prefix("label.").map(|name| Matcher::new(MatchOp::Equal, name, v))).collect();
    let sel = select::Selection { name: metric.to_owned(), matchers, quantile: None, range_s: None };
    let resolution = times.resolution(&[step], kept, now);
    let from = times.start - query::window(None, step, resolution);
    let series = store::fetch(db, tenant, std::slice::from_ref(&sel), &[from], resolution, times.end, limits).await?;
    let series: Vec<_> = series.into_iter().flatten().filter(|s| s.field == select::Field::Value).collect();
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
