//! The Prometheus HTTP API endpoints, as async functions over a D1 handle and
//! parsed parameters.

use crate::error::ApiError;
use crate::params::Params;
use crate::query::{self, eval, select};
use crate::{prom, store};
use worker::D1Database;

/// `GET|POST /api/v1/query`: an instant query.
pub async fn query(db: &D1Database, tenant: &str, params: &Params, now: f64) -> Result<serde_json::Value, ApiError> {
    let expr = query::parse(params.required("query")?)?;
    let t = params.time("time", now)?;
    let selections = select::selections(&expr)?;
    let mut fetched = Vec::with_capacity(selections.len());
    for sel in selections {
        let series = store::fetch(db, tenant, &sel, t - sel.lookback_s, t).await?;
        fetched.push((sel, series));
    }
    let value = eval::eval(&expr, t, &fetched)?;
    Ok(prom::success(prom::instant(&value, t)))
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
