//! Helpers for the end-to-end tests: where the stack runs, plain HTTP calls
//! as a client would make them, and unique names so tests sharing one stack
//! keep apart.
//!
//! The stack is started once by `cargo xtask test`, which passes its URLs in
//! `E2E_*` variables; run the suite through that command.

use anyhow::{bail, Context, Result};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use xtask::encode;
pub use xtask::stack::{DEV_INGEST_KEY, DEV_READ_KEY, DEV_STATUS_KEY};
pub use xtask::test::{MAX_DELETES_PER_RUN, MAX_POINTS_PER_RUN, MAX_SERIES_PER_METRIC, OTHER_INGEST_KEY, OTHER_READ_KEY};

/// URLs of the running stack.
pub struct Stack {
    pub ingest: String,
    pub rollup: String,
    pub dashboard: String,
}

/// The stack `cargo xtask test` started. Fails loudly, never skips, when the
/// suite is run some other way.
pub fn stack() -> Stack {
    let var =
        |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run the end-to-end tests with `cargo xtask test`"));
    Stack { ingest: var("E2E_INGEST_URL"), rollup: var("E2E_ROLLUP_URL"), dashboard: var("E2E_DASHBOARD_URL") }
}

/// A response, whatever its status.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().timeout(Duration::from_secs(60)).build()
}

fn reply(result: Result<ureq::Response, ureq::Error>) -> Result<Reply> {
    let resp = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(e).context("request failed"),
    };
    let status = resp.status();
    let content_type = resp.header("content-type").unwrap_or("").to_owned();
    let headers = resp
        .headers_names()
        .into_iter()
        .map(|n| {
            let v = resp.header(&n).unwrap_or("").to_owned();
            (n, v)
        })
        .collect();
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut resp.into_reader(), &mut body)?;
    Ok(Reply { status, content_type, headers, body })
}

/// `POST url` with the given headers and body.
pub fn post(url: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<Reply> {
    let mut req = agent().post(url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    reply(req.send_bytes(body))
}

/// `GET url` with the given headers.
pub fn get(url: &str, headers: &[(&str, &str)]) -> Result<Reply> {
    let mut req = agent().get(url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    reply(req.call())
}

/// Runs one rollup, as the cron would.
pub fn run_rollup(stack: &Stack) -> Result<()> {
    let r = get(&format!("{}/__scheduled?cron=*+*+*+*+*", stack.rollup), &[])?;
    if r.status != 200 {
        bail!("rollup run answered {}: {}", r.status, r.text());
    }
    Ok(())
}

/// Runs the rollup until `check` returns `Some`, or fails after `timeout`.
/// The queue consumer writes archives about a second after ingest, so the
/// first runs may find nothing yet.
pub fn rollup_until<T>(stack: &Stack, timeout: Duration, mut check: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        run_rollup(stack)?;
        if let Some(v) = check()? {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("condition not met within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A metric name no other test (or earlier run on the same state) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{prefix}.{}{}{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst), nanos % 1_000_000)
}

/// Now, in unix nanoseconds.
pub fn now_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// The local state folder the stack runs on.
pub fn state_dir() -> std::path::PathBuf {
    std::env::var_os("E2E_STATE").map(Into::into).expect("E2E_STATE is not set: run the end-to-end tests with `cargo xtask test`")
}

/// Rows of a query against the local D1 database, run with wrangler as an
/// operator would ([`xtask::stack::d1_query`], which retries a locked file).
pub fn d1(sql: &str) -> Result<Vec<serde_json::Value>> {
    xtask::stack::d1_query(&xtask::root(), &state_dir(), sql)
}

/// Keys of the archives the rollup has applied whose key time is at least
/// `since_ms`, read from its ledger: the per-commit rows (migration 0009)
/// and the per-archive rows written before them.
pub fn applied_archive_keys(since_ms: u64) -> Result<Vec<String>> {
    let since = format!("{}{since_ms:013}", proto::archive::KEY_PREFIX);
    let sql = format!(
        "SELECT key FROM processed_archives WHERE key >= '{since}' \
         UNION SELECT j.value AS key FROM ledger_archives a, json_each(a.keys) j WHERE a.last_key >= '{since}' AND j.value >= '{since}' \
         ORDER BY key"
    );
    Ok(d1(&sql)?.iter().filter_map(|r| r["key"].as_str().map(str::to_owned)).collect())
}

/// An archive read back from the local R2 bucket with wrangler.
pub fn read_archive(key: &str) -> Result<proto::archive::Archive> {
    Ok(proto::archive::decode(&get_object(key)?)?)
}

/// Raw bytes of an object in the local R2 bucket, read with wrangler.
pub fn get_object(key: &str) -> Result<Vec<u8>> {
    let file = r2_object("get", key, None)?;
    let bytes = std::fs::read(&file);
    let _ = std::fs::remove_file(&file);
    Ok(bytes?)
}

/// Writes an object into the local R2 bucket with wrangler, as the queue
/// consumer would.
pub fn put_object(key: &str, bytes: &[u8]) -> Result<()> {
    let file = r2_object("put", key, Some(bytes))?;
    let _ = std::fs::remove_file(&file);
    Ok(())
}

/// `wrangler r2 object <op>` on the archive bucket through a temporary file
/// (written first with `bytes`, if given); returns the file.
///
/// As with [`d1`], wrangler opens the local bucket's SQLite metadata beside
/// the running Workers, and a put that meets a lock fails with local R2's
/// "Unspecified error" (a 500 from workerd), or, when two wrangler
/// processes meet, with "Network connection lost". Such a failure is
/// retried, as an operator would retry it (a put of the same bytes to the
/// same key is idempotent); any other failure (a missing key) is returned.
fn r2_object(op: &str, key: &str, bytes: Option<&[u8]>) -> Result<std::path::PathBuf> {
    let file = std::env::temp_dir().join(format!("e2e-{op}-{}-{}", std::process::id(), key.replace('/', "_")));
    if let Some(bytes) = bytes {
        std::fs::write(&file, bytes)?;
    }
    let mut attempts = 0;
    let out = loop {
        let out = xtask::wrangler(&xtask::root())
            .args(["r2", "object", op, &format!("telemetry-archives/{key}"), "--local", "--env", "ingest", "--file"])
            .arg(&file)
            .arg("--persist-to")
            .arg(state_dir())
            .output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        let transient = ["Unspecified error", "SQLITE_BUSY", "Network connection lost"].iter().any(|m| stderr.contains(m));
        attempts += 1;
        if out.status.success() || !transient || attempts == 10 {
            break out;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    if !out.status.success() {
        let _ = std::fs::remove_file(&file);
        bail!("wrangler r2 object {op} {key} failed after {attempts} attempt(s): {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(file)
}

/// Posts an OTLP/JSON metrics export to ingest with the dev ingest key.
pub fn post_metrics_json(stack: &Stack, body: &str) -> Result<Reply> {
    post(
        &format!("{}/v1/metrics", stack.ingest),
        &[("content-type", "application/json"), ("authorization", &format!("Bearer {DEV_INGEST_KEY}"))],
        body.as_bytes(),
    )
}

/// Posts gauge samples of `metric` in `unit`, one per (unix seconds, value),
/// as OTLP/JSON with the dev ingest key, and fails unless every point was
/// accepted.
pub fn post_gauge(stack: &Stack, metric: &str, unit: &str, points: &[(u64, f64)]) -> Result<()> {
    let data: Vec<_> =
        points.iter().map(|&(t, v)| serde_json::json!({ "timeUnixNano": (t * 1_000_000_000).to_string(), "asDouble": v })).collect();
    post_gauge_export(stack, DEV_INGEST_KEY, metric, unit, data)
}

/// As [`post_gauge`], with the ingest key `key` and each point labelled
/// `label` = the third member of (unix seconds, value, label value).
pub fn post_labelled_gauge(stack: &Stack, key: &str, metric: &str, unit: &str, label: &str, points: &[(u64, f64, &str)]) -> Result<()> {
    let data: Vec<_> = points
        .iter()
        .map(|&(t, v, l)| {
            serde_json::json!({ "timeUnixNano": (t * 1_000_000_000).to_string(), "asDouble": v,
                                "attributes": [{ "key": label, "value": { "stringValue": l } }] })
        })
        .collect();
    post_gauge_export(stack, key, metric, unit, data)
}

fn post_gauge_export(stack: &Stack, key: &str, metric: &str, unit: &str, data: Vec<serde_json::Value>) -> Result<()> {
    let body = serde_json::json!({ "resourceMetrics": [{ "scopeMetrics": [{ "metrics": [
        { "name": metric, "unit": unit, "gauge": { "dataPoints": data } } ] }] }] });
    post_accepted(stack, key, &body)
}

/// Posts an OTLP/JSON metrics export with the ingest key `key`, and fails
/// unless every point was accepted.
pub fn post_accepted(stack: &Stack, key: &str, body: &serde_json::Value) -> Result<()> {
    let r = post(
        &format!("{}/v1/metrics", stack.ingest),
        &[("content-type", "application/json"), ("authorization", &format!("Bearer {key}"))],
        body.to_string().as_bytes(),
    )?;
    anyhow::ensure!(r.status == 200 && !r.text().contains("rejectedDataPoints"), "ingest answered {}: {}", r.status, r.text());
    Ok(())
}

/// A GET of dashboard-api's `path_and_query` with this `Authorization`
/// header; fails unless it answers 200.
pub fn dashboard_get(stack: &Stack, authorization: &str, path_and_query: &str) -> Result<Reply> {
    let r = get(&format!("{}{path_and_query}", stack.dashboard), &[("authorization", authorization)])?;
    anyhow::ensure!(r.status == 200, "GET {path_and_query} answered {}: {}", r.status, r.text());
    Ok(r)
}

/// Points of the dev tenant's `metric` counted in its buckets of
/// `resolution` seconds (0 before any).
pub fn counted(metric: &str, resolution: u32) -> Result<f64> {
    let sql = format!(
        "SELECT SUM(a.count) AS n FROM aggregates a JOIN series s ON s.id = a.series_id \
         WHERE s.tenant = 'dev' AND s.metric = '{metric}' AND a.resolution = {resolution}"
    );
    Ok(d1(&sql)?.first().and_then(|r| r["n"].as_f64()).unwrap_or(0.0))
}

/// `Authorization: Basic base64(user:password)`, as Grafana sends it.
pub fn basic(user: &str, password: &str) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = format!("{user}:{password}").into_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= chunk.len() { ABC[(n >> (18 - 6 * i) & 63) as usize] as char } else { '=' });
        }
    }
    format!("Basic {out}")
}

/// An instant query against dashboard-api with the dev read key.
pub fn instant_query(stack: &Stack, query: &str, time_s: f64) -> Result<Reply> {
    get(
        &format!("{}/api/v1/query?query={}&time={time_s}", stack.dashboard, encode(query)),
        &[("authorization", &format!("Bearer {DEV_READ_KEY}"))],
    )
}

/// The rollup's `GET /status`, with the stack's status key.
///
/// The tests read D1 beside the running Workers with wrangler ([`d1`]),
/// which opens the local database file from a second process. When the two
/// meet, local D1 can fail the Worker's read with workerd's opaque
/// "internal error; reference = …" (seen in `getCurrentBookmark`), and
/// /status rightly answers 503. Production has no second process, so that
/// one answer is retried, as an operator would retry it; any other failure
/// is returned.
pub fn rollup_status(stack: &Stack) -> Result<serde_json::Value> {
    let mut attempts = 0;
    loop {
        let r = get(&format!("{}/status", stack.rollup), &[("authorization", &format!("Bearer {DEV_STATUS_KEY}"))])?;
        if r.status == 200 {
            return Ok(r.json());
        }
        attempts += 1;
        if r.status != 503 || !r.text().contains("internal error; reference") || attempts == 5 {
            bail!("rollup /status answered {}: {}", r.status, r.text());
        }
        eprintln!("rollup /status met local D1's internal error (attempt {attempts}); retrying");
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The rollup's report of its last run (`GET /status`).
pub fn last_run(stack: &Stack) -> Result<serde_json::Value> {
    Ok(rollup_status(stack)?["last_run"].clone())
}

/// Gauge points of `metric` in the dev tenant, one per (unix seconds, value).
pub fn gauge_batch(batch_id: &str, metric: &str, points: &[(u64, f64)]) -> proto::point::Batch {
    use proto::point::{Batch, Point, Value};
    Batch {
        tenant: xtask::stack::DEV_TENANT.into(),
        batch_id: batch_id.into(),
        points: points
            .iter()
            .map(|&(s, v)| Point {
                metric: metric.into(),
                unit: "ms".into(),
                time_unix_nano: s * 1_000_000_000,
                value: Some(Value::Gauge(v)),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// Writes an archive of `batches` under a key of time `key_ms` into the
/// local R2 bucket, as the queue consumer would; returns the key.
pub fn put_archive(key_ms: u64, id: &str, batches: Vec<proto::point::Batch>) -> Result<String> {
    use prost::Message;
    let key = proto::archive::key(key_ms, &[id]);
    let encoded: Vec<Vec<u8>> = batches.iter().map(Message::encode_to_vec).collect();
    put_object(&key, &proto::archive::encode(&encoded.iter().map(Vec::as_slice).collect::<Vec<_>>()))?;
    Ok(key)
}
