//! The dashboard-api Worker: percentiles and rates from the rollup's D1
//! aggregates, served as a subset of the Prometheus HTTP API so that
//! Grafana's built-in Prometheus data source works unchanged.
//!
//! This file is glue: routing, authentication and turning results into
//! responses. Query logic is in [`query`], the endpoints in [`api`].

pub mod api;
pub mod catalog;
pub mod config;
pub mod error;
pub mod json_api;
pub mod params;
pub mod prom;
pub mod query;
mod store;

use error::ApiError;
use worker::{event, Context, Env, Method, Request, Response};

/// Binding and secret names, as in `wrangler.toml`.
const DB: &str = "DB";
const READ_KEYS: &str = "READ_KEYS";

#[event(fetch)]
async fn fetch(mut req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    match route(&mut req, &env).await {
        Ok(body) => Response::from_json(&body),
        Err(e) => {
            if e.status() >= 500 {
                worker::console_error!("dashboard-api: {e}");
            }
            let resp = Response::from_json(&e.body())?.with_status(e.status());
            let headers = resp.headers().clone();
            for (k, v) in e.headers() {
                headers.set(k, v)?;
            }
            Ok(resp.with_headers(headers))
        }
    }
}

async fn route(req: &mut Request, env: &Env) -> Result<serde_json::Value, ApiError> {
    let path = req.path();
    if path == "/" && req.method() == Method::Get {
        return Ok(serde_json::json!({ "service": "dashboard-api", "status": "ok", "version": env!("CARGO_PKG_VERSION") }));
    }
    let tenant = tenant(req, env)?;
    let params = params(req).await?;
    let db = env.d1(DB).map_err(|e| ApiError::Config(e.to_string()))?;
    let now = worker::Date::now().as_millis() as f64 / 1000.0;
    let kept = config::Kept::from_vars(|name| env.var(name).ok().map(|v| v.to_string()))?;
    match (req.method(), path.as_str()) {
        (Method::Get | Method::Post, "/api/v1/query") => api::query(&db, &tenant, &params, &kept, now).await,
        (Method::Get | Method::Post, "/api/v1/query_range") => api::query_range(&db, &tenant, &params, &kept, now).await,
        (Method::Get | Method::Post, "/api/v1/series") => api::series(&db, &tenant, &params).await,
        (Method::Get | Method::Post, "/api/v1/labels") => api::labels(&db, &tenant, &params).await,
        (Method::Get, "/api/v1/metadata") => api::metadata(&db, &tenant, &params).await,
        (Method::Get, p) if p.starts_with("/api/v1/label/") && p.ends_with("/values") => {
            let label = &p["/api/v1/label/".len()..p.len() - "/values".len()];
            api::label_values(&db, &tenant, label, &params).await
        }
        (Method::Get, "/api/v1/status/buildinfo") => Ok(api::buildinfo()),
        (Method::Get, "/api/v1/json/metrics") => api::json_metrics(&db, &tenant).await,
        (Method::Get, "/api/v1/json/series") => api::json_series(&db, &tenant, &params).await,
        (Method::Get, "/api/v1/json/percentiles") => api::json_percentiles(&db, &tenant, &params, &kept, now).await,
        _ => Err(ApiError::NotFound(path)),
    }
}

/// The tenant of the request's read key (bearer token or basic-auth password).
fn tenant(req: &Request, env: &Env) -> Result<String, ApiError> {
    let secret = env.var(READ_KEYS).map_err(|_| ApiError::Config(format!("{READ_KEYS} is not set")))?;
    let keys = proto::keys::Keys::parse(&secret.to_string()).map_err(|e| ApiError::Config(format!("{READ_KEYS}: {e}")))?;
    let header = req.headers().get("authorization").ok().flatten();
    let key = proto::keys::request_key(header.as_deref()).ok_or(ApiError::Unauthorized)?;
    keys.tenant(&key).map(str::to_owned).ok_or(ApiError::Unauthorized)
}

async fn params(req: &mut Request) -> Result<params::Params, ApiError> {
    let url = req.url().map_err(|e| ApiError::BadData(e.to_string()))?;
    let form = if req.method() == Method::Post {
        Some(req.bytes().await.map_err(|e| ApiError::BadData(format!("unreadable body: {e}")))?)
    } else {
        None
    };
    Ok(params::Params::parse(url.query(), form.as_deref()))
}
