//! The ingest Worker: OTLP/HTTP in; raw points to Analytics Engine; batches
//! to a Queue whose consumer (also here) writes gzip archives to R2.
//!
//! This file is glue: it reads requests and bindings and calls the plain
//! modules, where all the logic lives and is tested natively.

pub mod analytics;
pub mod batches;
pub mod body;
pub mod config;
pub mod error;
pub mod export;
mod gzip;

use error::IngestError;
use worker::{
    event, js_sys, Context, Env, MessageBatch, MessageExt, Method, QueueContentType, RawMessageBuilder, Request,
    Response,
};

/// Binding names, as in `wrangler.toml`.
const RAW_POINTS: &str = "RAW_POINTS";
const ARCHIVE_QUEUE: &str = "ARCHIVE_QUEUE";
const ARCHIVES: &str = "ARCHIVES";

#[event(fetch)]
async fn fetch(mut req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    let content_type = req.headers().get("content-type").ok().flatten();
    let reply_in = body::response_encoding(content_type.as_deref());
    match route(&mut req, &env).await {
        Ok(resp) => Ok(resp),
        Err(e) => {
            if e.status() >= 500 {
                worker::console_error!("ingest: {e}");
            }
            respond(e.status(), reply_in, e.body(reply_in), &e.headers())
        }
    }
}

async fn route(req: &mut Request, env: &Env) -> Result<Response, IngestError> {
    let path = req.path();
    match (req.method(), path.as_str()) {
        (Method::Get, "/") => {
            let status = serde_json::json!({ "service": "ingest", "status": "ok", "version": env!("CARGO_PKG_VERSION") });
            Response::from_json(&status).map_err(internal)
        }
        (method, p) => match export::Signal::from_path(p) {
            Some(signal) if method == Method::Post => export(signal, req, env).await,
            Some(_) => Err(IngestError::MethodNotAllowed { method: req.method().to_string(), path }),
            None => Err(IngestError::NotFound(path)),
        },
    }
}

async fn export(signal: export::Signal, req: &mut Request, env: &Env) -> Result<Response, IngestError> {
    let headers = req.headers().clone();
    let header = |name: &str| headers.get(name).ok().flatten();
    let keys = config::keys(env.var(config::INGEST_KEYS).ok().map(|s| s.to_string()))?;
    let authorization = header("authorization");
    let token = proto::keys::bearer(authorization.as_deref()).unwrap_or("");
    let tenant = keys.tenant(token).ok_or(IngestError::Unauthorized)?.to_owned();
    let encoding = body::encoding(header("content-type").as_deref())?;
    let limits = config::limits(|name| env.var(name).ok().map(|v| v.to_string()))?;
    body::check_declared_length(header("content-length").as_deref(), &limits)?;
    let raw = req.bytes().await.map_err(|e| IngestError::BadCompression { encoding: "body", reason: e.to_string() })?;
    let content_encoding = header("content-encoding");
    let body = body::decompress(raw, content_encoding.as_deref(), &limits)?;

    let request_id = export::request_id(&tenant, &body);
    let ctx = export::Context {
        tenant: &tenant,
        request_id: &request_id,
        now_unix_nano: worker::Date::now().as_millis() * 1_000_000,
    };
    let accepted = export::export(signal, &ctx, &body, encoding)?;

    // The queue is the durable path: only once it has the batches are the
    // Analytics Engine points written, so a failed send that the client
    // retries is not counted twice there either.
    let queue = env.queue(ARCHIVE_QUEUE).map_err(internal)?;
    for message in &accepted.messages {
        let bytes = js_sys::Uint8Array::from(message.as_slice());
        let send = RawMessageBuilder::new(bytes.into()).build_with_content_type(QueueContentType::V8);
        queue.send_raw(send).await.map_err(|e| IngestError::Unavailable(format!("queue: {e}")))?;
    }
    if let Ok(dataset) = env.analytics_engine(RAW_POINTS) {
        for dp in &accepted.data_points {
            let point = worker::AnalyticsEngineDataPointBuilder::new()
                .indexes([dp.index.as_str()])
                .blobs(dp.blobs.iter().map(String::as_str))
                .doubles(dp.doubles.iter().copied())
                .build();
            if let Err(e) = dataset.write_data_point(&point) {
                worker::console_warn!("analytics engine write failed: {e}");
            }
        }
    }
    respond(200, encoding, accepted.response, &[]).map_err(internal)
}

fn internal(e: worker::Error) -> IngestError {
    IngestError::Unavailable(e.to_string())
}

fn respond(status: u16, encoding: body::Encoding, bytes: Vec<u8>, headers: &[(&str, String)]) -> worker::Result<Response> {
    let resp = Response::from_bytes(bytes)?.with_status(status);
    let h = resp.headers().clone();
    h.set(
        "content-type",
        match encoding {
            body::Encoding::Protobuf => "application/x-protobuf",
            body::Encoding::Json => "application/json",
        },
    )?;
    for (name, value) in headers {
        h.set(name, value)?;
    }
    Ok(resp.with_headers(h))
}

/// The queue consumer: writes each delivered batch of messages to R2 as one
/// archive. Never returns an error (that would abort the wasm instance):
/// failures mark messages for retry, and messages that keep failing go to the
/// dead-letter queue.
#[event(queue)]
async fn consume(batch: MessageBatch<worker::wasm_bindgen::JsValue>, env: Env, _ctx: Context) -> worker::Result<()> {
    let mut bodies = Vec::new();
    let mut ids = Vec::new();
    let mut good = Vec::new();
    for message in batch.raw_iter() {
        match message.body().dyn_into::<js_sys::Uint8Array>() {
            Ok(bytes) => {
                bodies.push(bytes.to_vec());
                ids.push(message.id());
                good.push(message);
            }
            Err(_) => {
                worker::console_error!("queue message {} is not bytes; retrying towards the dead-letter queue", message.id());
                message.retry();
            }
        }
    }
    if good.is_empty() {
        return Ok(());
    }
    let key = proto::archive::key(worker::Date::now().as_millis(), &ids.iter().map(String::as_str).collect::<Vec<_>>());
    let raw = proto::archive::raw(&bodies.iter().map(Vec::as_slice).collect::<Vec<_>>());
    let put = match (gzip::gzip(&raw).await, env.bucket(ARCHIVES)) {
        (Ok(archive), Ok(bucket)) => bucket.put(&key, archive).execute().await.map(|_| ()),
        (Err(e), _) => Err(worker::Error::from(e)),
        (_, Err(e)) => Err(e),
    };
    match put {
        Ok(()) => good.iter().for_each(|m| m.ack()),
        Err(e) => {
            worker::console_error!("writing archive {key} failed, retrying {} messages: {e}", good.len());
            good.iter().for_each(|m| m.retry());
        }
    }
    Ok(())
}

use worker::wasm_bindgen::JsCast;
