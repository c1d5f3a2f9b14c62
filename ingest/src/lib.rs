//! The ingest Worker: OTLP/HTTP in; raw points to Analytics Engine; batches
//! to a Queue whose consumer (also here) writes gzip archives to R2.
//!
//! This file is glue: it reads requests and bindings and calls the plain
//! modules, where all the logic lives and is tested natively.

pub mod analytics;
pub mod batches;
pub mod body;
pub mod config;
pub mod consumer;
pub mod error;
pub mod export;

use error::IngestError;
use worker::wasm_bindgen::JsValue;
use worker::wasm_bindgen_futures::JsFuture;
use worker::worker_sys::web_sys;
use worker::{event, js_sys, Context, Env, MessageBatch, MessageExt, QueueContentType, RawMessageBuilder, Response};

/// Binding names, as in `wrangler.toml`.
const RAW_POINTS: &str = "RAW_POINTS";
const ARCHIVE_QUEUE: &str = "ARCHIVE_QUEUE";
const ARCHIVES: &str = "ARCHIVES";
/// The dead-letter queue's name, as in `wrangler.toml`.
const DEAD_LETTER_QUEUE: &str = "telemetry-archive-dlq";

/// Takes the runtime's `Request` as it is: converting it into a
/// `worker::Request` reads `request.cf` on every request, which costs more
/// than the rest of the glue together.
#[event(fetch)]
async fn fetch(req: web_sys::Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    let headers = req.headers();
    let header = |name: &str| headers.get(name).ok().flatten();
    let reply_in = body::response_encoding(header("content-type").as_deref());
    match route(&req, &header, &env).await {
        Ok(resp) => Ok(resp),
        Err(e) => {
            if e.status() >= 500 {
                worker::console_error!("ingest: {e}");
            }
            respond(e.status(), reply_in, e.body(reply_in), &e.headers())
        }
    }
}

async fn route(req: &web_sys::Request, header: &dyn Fn(&str) -> Option<String>, env: &Env) -> Result<Response, IngestError> {
    let url = req.url();
    let path = export::path_of(&url);
    let method = req.method();
    match (method.as_str(), path) {
        ("GET", "/") => {
            let status = serde_json::json!({ "service": "ingest", "status": "ok", "version": env!("CARGO_PKG_VERSION") });
            Response::from_json(&status).map_err(internal)
        }
        (method, p) => match export::Signal::from_path(p) {
            Some(signal) if method == "POST" => export(signal, req, header, env).await,
            Some(_) => Err(IngestError::MethodNotAllowed { method: method.to_owned(), path: path.to_owned() }),
            None => Err(IngestError::NotFound(path.to_owned())),
        },
    }
}

async fn export(
    signal: export::Signal,
    req: &web_sys::Request,
    header: &dyn Fn(&str) -> Option<String>,
    env: &Env,
) -> Result<Response, IngestError> {
    let keys = config::keys(env.var(config::INGEST_KEYS).ok().map(|s| s.to_string()))?;
    let authorization = header("authorization");
    let token = proto::keys::bearer(authorization.as_deref()).unwrap_or("");
    let tenant = keys.tenant(token).ok_or(IngestError::Unauthorized)?.to_owned();
    let encoding = body::encoding(header("content-type").as_deref())?;
    let limits = config::limits(|name| env.var(name).ok().map(|v| v.to_string()))?;
    body::check_declared_length(header("content-length").as_deref(), &limits)?;
    let unreadable = |e: JsValue| IngestError::BadCompression { encoding: "body", reason: format!("{e:?}") };
    let buffer = JsFuture::from(req.array_buffer().map_err(unreadable)?).await.map_err(unreadable)?;
    let raw = js_sys::Uint8Array::new(&buffer).to_vec();
    let body = body::decompress(raw, header("content-encoding").as_deref(), &limits)?;

    let ctx = export::Context {
        tenant: &tenant,
        now_unix_nano: worker::Date::now().as_millis() * 1_000_000,
        seed: (js_sys::Math::random() * 9_007_199_254_740_992.0) as u64,
        analytics_one_in: config::analytics_one_in(env.var(config::ANALYTICS_ONE_IN).ok().map(|v| v.to_string()))?,
    };
    let accepted = export::export(signal, &ctx, &body, encoding)?;

    // The queue is the durable path: only once it has the batches are the
    // Analytics Engine points written, so a failed send that the client
    // retries is not counted twice there either.
    let queue = env.queue(ARCHIVE_QUEUE).map_err(internal)?;
    // The var is read only for a request that asks, not on every request.
    let asked = header(consumer::FAULT_HEADER);
    let faults = asked.as_ref().and_then(|_| env.var(consumer::TEST_FAULTS).ok()).map(|v| v.to_string());
    let fault = consumer::dead_letter_fault(faults.as_deref(), asked.as_deref());
    let poison = fault.then_some(consumer::UNREADABLE.to_vec());
    for message in accepted.messages.iter().chain(poison.iter()) {
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
/// archive. Messages are archive members already (ingest compressed them),
/// so the archive is their concatenation. Never returns an error (that would
/// abort the wasm instance): failures mark messages for retry, and messages
/// that keep failing go to the dead-letter queue.
#[event(queue)]
async fn consume(batch: MessageBatch<worker::wasm_bindgen::JsValue>, env: Env, _ctx: Context) -> worker::Result<()> {
    if batch.queue() == DEAD_LETTER_QUEUE {
        park_dead_letters(&batch, &env).await;
        return Ok(());
    }
    let mut archive = Vec::new();
    let mut ids = Vec::new();
    let mut good = Vec::new();
    for message in batch.raw_iter() {
        match message.body().dyn_into::<js_sys::Uint8Array>() {
            Ok(bytes) => {
                // Copied straight into the archive: a message is normally a
                // member already.
                let start = archive.len();
                archive.resize(start + bytes.length() as usize, 0);
                bytes.copy_to(&mut archive[start..]);
                match consumer::classify(&archive[start..]) {
                    consumer::Delivered::Member => {}
                    // A bare encoded Batch, as ingest queued before archive
                    // format 2 (messages in flight across a deploy).
                    consumer::Delivered::Bare => {
                        let bare = archive.split_off(start);
                        archive.extend(proto::archive::encode(&[&bare]));
                    }
                    consumer::Delivered::Unreadable => {
                        archive.truncate(start);
                        worker::console_error!(
                            "queue message {} is not an archive member; retrying towards the dead-letter queue",
                            message.id()
                        );
                        message.retry();
                        continue;
                    }
                }
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
    let put = match env.bucket(ARCHIVES) {
        Ok(bucket) => bucket.put(&key, archive).execute().await.map(|_| ()),
        Err(e) => Err(e),
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

/// The dead-letter consumer: parks each message under `dead-letter/` in R2
/// (see [`consumer`]) and acknowledges it; one it cannot write is retried.
async fn park_dead_letters(batch: &MessageBatch<worker::wasm_bindgen::JsValue>, env: &Env) {
    let bucket = match env.bucket(ARCHIVES) {
        Ok(b) => b,
        Err(e) => {
            worker::console_error!("dead letters: no R2 binding: {e}");
            batch.retry_all();
            return;
        }
    };
    for message in batch.raw_iter() {
        let bytes = match message.body().dyn_into::<js_sys::Uint8Array>() {
            Ok(b) => b.to_vec(),
            // Whatever it is, keep its text form.
            Err(other) => format!("{other:?}").into_bytes(),
        };
        let key = consumer::dead_letter_key(worker::Date::now().as_millis(), &message.id());
        match bucket.put(&key, bytes).execute().await {
            Ok(_) => message.ack(),
            Err(e) => {
                worker::console_error!("parking dead letter {key} failed: {e}");
                message.retry();
            }
        }
    }
}

use worker::wasm_bindgen::JsCast;
