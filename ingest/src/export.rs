//! The functional core of an OTLP export: body bytes in; queue messages,
//! Analytics Engine data points and the response body out. The Worker only
//! reads the request and hands these to the bindings.

use crate::analytics::{self, DataPoint};
use crate::batches::{self, MAX_MESSAGE_BYTES};
use crate::body::Encoding;
use crate::error::IngestError;
use proto::normalize::Normalized;
use proto::otlp::{logs, metrics, trace};

/// The three OTLP signals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Metrics,
    Traces,
    Logs,
}

impl Signal {
    /// The signal an OTLP/HTTP path names.
    pub fn from_path(path: &str) -> Option<Signal> {
        match path {
            "/v1/metrics" => Some(Signal::Metrics),
            "/v1/traces" => Some(Signal::Traces),
            "/v1/logs" => Some(Signal::Logs),
            _ => None,
        }
    }
}

/// The path of a request URL (`http://host/v1/metrics?x` → `/v1/metrics`).
pub fn path_of(url: &str) -> &str {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = after_scheme.find('/').map_or("/", |i| &after_scheme[i..]);
    path.split(['?', '#']).next().unwrap_or("/")
}

/// Who sent the request and when it arrived.
pub struct Context<'a> {
    pub tenant: &'a str,
    pub now_unix_nano: u64,
    /// Random per request: keys the hash of label strings (see `batches`),
    /// and makes the id of a request whose points took the receive time
    /// its own (see [`request_id`]), and draws whether the request writes
    /// Analytics Engine data points ([`analytics::sampled`]).
    pub seed: u64,
    /// One request in this many writes Analytics Engine data points
    /// (`ANALYTICS_ONE_IN`; 1 for every request).
    pub analytics_one_in: u32,
}

/// What to do with an accepted export.
#[derive(Debug)]
pub struct Accepted {
    /// Encoded batches for the queue.
    pub messages: Vec<Vec<u8>>,
    pub data_points: Vec<DataPoint>,
    /// Points derived from the request and queued.
    pub points: usize,
    /// Data points, spans or log records rejected, as the response reports.
    pub rejected: u64,
    /// The `Export*ServiceResponse`, in the request's encoding.
    pub response: Vec<u8>,
}

/// The request id, which prefixes its batches' ids: a hash of tenant and
/// body, so that an exporter retrying the same body produces the same
/// batch ids, which the rollup counts once. A body with points that took
/// the receive time (no timestamp: a heartbeat counter, a repeated log
/// line) means new points at every send, so `fresh` (receive time and the
/// request's random seed) goes into the hash and each send counts.
pub fn request_id(tenant: &str, body: &[u8], fresh: Option<(u64, u64)>) -> String {
    match fresh {
        None => proto::hash::hex128(&[tenant.as_bytes(), body]),
        Some((now, seed)) => proto::hash::hex128(&[tenant.as_bytes(), body, &now.to_le_bytes(), &seed.to_le_bytes()]),
    }
}

/// Decodes, normalizes and packages an OTLP export of `signal`.
pub fn export(signal: Signal, ctx: &Context<'_>, body: &[u8], encoding: Encoding) -> Result<Accepted, IngestError> {
    use proto::{decode, normalize};
    let now = ctx.now_unix_nano;
    let normalized = match signal {
        Signal::Metrics => normalize::metrics::normalize(decode::metrics(body, encoding)?, now),
        Signal::Traces => normalize::traces::normalize(&decode::traces(body, encoding)?, now),
        Signal::Logs => normalize::logs::normalize(&decode::logs(body, encoding)?, now),
    };
    let id = request_id(ctx.tenant, body, normalized.took_now.then_some((now, ctx.seed)));
    Ok(package(signal, ctx, &id, normalized, encoding))
}

fn package(signal: Signal, ctx: &Context<'_>, request_id: &str, normalized: Normalized, encoding: Encoding) -> Accepted {
    let mut message = normalized.error_message();
    let data_points = if analytics::sampled(ctx.seed, ctx.analytics_one_in) {
        analytics::data_points(ctx.tenant, &normalized.groups, f64::from(ctx.analytics_one_in.max(1)))
    } else {
        Vec::new()
    };
    let points = normalized.len();
    let split = batches::split(ctx.tenant, request_id, ctx.seed, normalized.groups, MAX_MESSAGE_BYTES);
    if split.oversized > 0 {
        if !message.is_empty() {
            message.push_str("; ");
        }
        message.push_str(&format!("{} points larger than a queue message", split.oversized));
    }
    let rejected = normalized.rejected + split.oversized as u64;
    Accepted {
        messages: split.messages,
        data_points,
        points: points - split.oversized,
        rejected,
        response: response(signal, rejected, &message, encoding),
    }
}

/// `Export*ServiceResponse`: empty when everything was accepted without a
/// warning, with `partial_success` otherwise. A warning alone (label values
/// cut) is a `partial_success` with zero rejected, as the specification allows.
fn response(signal: Signal, rejected: u64, message: &str, encoding: Encoding) -> Vec<u8> {
    if rejected == 0 && message.is_empty() {
        return match encoding {
            Encoding::Protobuf => Vec::new(),
            Encoding::Json => b"{}".to_vec(),
        };
    }
    let n = rejected as i64;
    let error_message = message.to_owned();
    match encoding {
        Encoding::Protobuf => match signal {
            Signal::Metrics => prost::Message::encode_to_vec(&metrics::ExportMetricsServiceResponse {
                partial_success: Some(metrics::ExportMetricsPartialSuccess { rejected_data_points: n, error_message }),
            }),
            Signal::Traces => prost::Message::encode_to_vec(&trace::ExportTraceServiceResponse {
                partial_success: Some(trace::ExportTracePartialSuccess { rejected_spans: n, error_message }),
            }),
            Signal::Logs => prost::Message::encode_to_vec(&logs::ExportLogsServiceResponse {
                partial_success: Some(logs::ExportLogsPartialSuccess { rejected_log_records: n, error_message }),
            }),
        },
        Encoding::Json => {
            let field = match signal {
                Signal::Metrics => "rejectedDataPoints",
                Signal::Traces => "rejectedSpans",
                Signal::Logs => "rejectedLogRecords",
            };
            // int64 is a string in the protobuf JSON mapping.
            serde_json::json!({ "partialSuccess": { field: n.to_string(), "errorMessage": error_message } }).to_string().into_bytes()
        }
    }
}

#[cfg(test)]
mod tests;
