//! The dashboard-api Worker: percentiles and rates from the rollup's D1
//! aggregates, served as a subset of the Prometheus HTTP API so that
//! Grafana's built-in Prometheus data source works unchanged.
//!
//! This file is glue: routing, authentication and turning results into
//! responses. Query logic is in [`query`], the endpoints in [`api`].

pub mod api;
pub mod budget;
pub mod cache;
pub mod catalog;
pub mod config;
pub mod error;
pub mod json_api;
pub mod params;
pub mod prom;
pub mod query;
mod store;

use error::ApiError;
use proto::d1::Db;
use worker::{event, Cache, Context, Env, Headers, Method, Request, Response};

/// Binding and secret names, as in `wrangler.toml`.
const DB: &str = "DB";
const READ_KEYS: &str = "READ_KEYS";

#[event(fetch)]
async fn fetch(mut req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    match handle(&mut req, &env).await {
        Ok(resp) => Ok(resp),
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

/// Authenticates, then answers from the cache or by evaluating, and stores
/// what may be cached. Every response says which in `Cache-Status`.
async fn handle(req: &mut Request, env: &Env) -> Result<Response, ApiError> {
    let path = req.path();
    if path == "/" && req.method() == Method::Get {
        let status = serde_json::json!({ "service": "dashboard-api", "status": "ok", "version": env!("CARGO_PKG_VERSION") });
        return Response::from_json(&status).map_err(internal);
    }
    let tenant = tenant(req, env)?;
    let params = params(req).await?;
    let db = Db::new(env.d1(DB).map_err(|e| ApiError::Config(e.to_string()))?);
    let now = worker::Date::now().as_millis() as f64 / 1000.0;
    let key = match cache::candidate(&path, &params, now) {
        true => cache::key(&tenant, store::generation(&db, &tenant).await?, &path, &params),
        false => None,
    };
    if let Some(key) = &key {
        // A cache that fails to answer is a miss, not an error.
        if let Ok(Some(hit)) = Cache::default().get(key.as_str(), true).await {
            return with_cache_status(hit, "hit");
        }
    }
    let answer = route(req.method(), &path, &db, &tenant, &params, env, now).await?;
    let mut resp = Response::from_json(&answer.body).map_err(internal)?;
    let stored = match (key, answer.until) {
        (Some(key), Some(until)) if cache::closed(until, now) => {
            let copy = resp.cloned().map_err(internal)?;
            let copy = copy
                .with_headers(headers(&[("content-type", "application/json"), ("cache-control", &format!("max-age={}", cache::TTL_S))])?);
            match Cache::default().put(key.as_str(), copy).await {
                Ok(()) => true,
                Err(e) => {
                    worker::console_warn!("dashboard-api: caching a response failed: {e}");
                    false
                }
            }
        }
        _ => false,
    };
    with_cache_status(resp, if stored { "fwd=miss; stored" } else { "fwd=uri-miss" })
}

async fn route(
    method: Method,
    path: &str,
    db: &Db,
    tenant: &str,
    params: &params::Params,
    env: &Env,
    now: f64,
) -> Result<api::Answer, ApiError> {
    let vars = |name: &str| env.var(name).ok().map(|v| v.to_string());
    let kept = config::kept(vars)?;
    let limits = budget::Limits::from_vars(vars)?;
    if let (Method::Get, Some(label)) = (&method, api::label_of(path)) {
        return api::label_values(db, tenant, label, params).await.map(Into::into);
    }
    match (method, path) {
        (Method::Get | Method::Post, "/api/v1/query") => api::query(db, tenant, params, &kept, &limits, now).await,
        (Method::Get | Method::Post, "/api/v1/query_range") => api::query_range(db, tenant, params, &kept, &limits, now).await,
        (Method::Get | Method::Post, "/api/v1/series") => api::series(db, tenant, params).await.map(Into::into),
        (Method::Get | Method::Post, "/api/v1/labels") => api::labels(db, tenant, params).await.map(Into::into),
        (Method::Get, "/api/v1/metadata") => api::metadata(db, tenant, params).await.map(Into::into),
        (Method::Get, "/api/v1/status/buildinfo") => Ok(api::buildinfo().into()),
        (Method::Get, "/api/v1/json/metrics") => api::json_metrics(db, tenant).await.map(Into::into),
        (Method::Get, "/api/v1/json/series") => api::json_series(db, tenant, params).await.map(Into::into),
        (Method::Get, "/api/v1/json/percentiles") => api::json_percentiles(db, tenant, params, &kept, &limits, now).await,
        _ => Err(ApiError::NotFound(path.to_owned())),
    }
}

/// `Cache-Status` (RFC 9211): `hit`, `fwd=miss; stored`, or `fwd=uri-miss`
/// for what is not cached.
fn with_cache_status(resp: Response, status: &str) -> Result<Response, ApiError> {
    let h = resp.headers().clone();
    h.set("cache-status", &format!("dashboard-api; {status}")).map_err(internal)?;
    // A cached copy carries max-age for the Cache API; the client must not
    // keep authenticated answers in shared caches.
    h.set("cache-control", "private, no-store").map_err(internal)?;
    Ok(resp.with_headers(h))
}

fn headers(pairs: &[(&str, &str)]) -> Result<Headers, ApiError> {
    let h = Headers::new();
    for (k, v) in pairs {
        h.set(k, v).map_err(internal)?;
    }
    Ok(h)
}

fn internal(e: worker::Error) -> ApiError {
    ApiError::Execution(format!("internal: {e}"))
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
    let form = if req.method() == Method::Post { Some(body(req).await?) } else { None };
    Ok(params::Params::parse(url.query(), form.as_deref()))
}

/// A POST body, read up to [`budget::MAX_BODY_BYTES`]: a declared length
/// beyond it is refused before reading, and reading stops (cancelling the
/// upload) as soon as the bytes pass it.
async fn body(req: &mut Request) -> Result<Vec<u8>, ApiError> {
    use futures_util::StreamExt;
    let too_large = || ApiError::TooLarge(budget::MAX_BODY_BYTES);
    let declared = req.headers().get("content-length").ok().flatten().and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > budget::MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let mut stream = match req.stream() {
        Ok(s) => s,
        // No body at all: no parameters in it.
        Err(_) => return Ok(Vec::new()),
    };
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadData(format!("unreadable body: {e}")))?;
        if out.len() + chunk.len() > budget::MAX_BODY_BYTES {
            return Err(too_large());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}
