//! The functional core of an OTLP export: body bytes in; queue messages,
//! Analytics Engine data points and the response body out. The Worker only
//! reads the request and hands these to the bindings.

use crate::analytics::{self, DataPoint};
use crate::batches::{self, MAX_MESSAGE_BYTES};
use crate::body::Encoding;
use crate::error::IngestError;
use proto::otlp::metrics::{ExportMetricsPartialSuccess, ExportMetricsServiceResponse};
use proto::point::Point;

/// Who sent the request and when it arrived.
pub struct Context<'a> {
    pub tenant: &'a str,
    /// Unique per request; prefixes the queue messages' batch ids.
    pub request_id: &'a str,
    pub now_unix_nano: u64,
}

/// What to do with an accepted export.
#[derive(Debug)]
pub struct Accepted {
    /// Encoded batches for the queue.
    pub messages: Vec<Vec<u8>>,
    pub data_points: Vec<DataPoint>,
    /// Points accepted (in `messages`).
    pub accepted: usize,
    /// Points rejected, reported in the response.
    pub rejected: u64,
    /// The `Export*ServiceResponse`, in the request's encoding.
    pub response: Vec<u8>,
}

/// The request id: a hash of tenant and body, so that an exporter retrying
/// the same body produces the same batch ids, which the rollup counts once.
pub fn request_id(tenant: &str, body: &[u8]) -> String {
    // FNV-1a, 64 bits: stable across builds and cheap on large bodies.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in tenant.as_bytes().iter().chain([0u8].iter()).chain(body) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Decodes, normalizes and packages an OTLP metrics export.
pub fn metrics(ctx: &Context, body: &[u8], encoding: Encoding) -> Result<Accepted, IngestError> {
    let request = proto::decode::metrics(body, encoding)?;
    let normalized = proto::normalize::metrics::normalize(&request, ctx.now_unix_nano);
    let mut reasons = normalized.error_message();
    Ok(package(ctx, normalized.points, normalized.rejected, &mut reasons, encoding))
}

fn package(ctx: &Context, points: Vec<Point>, rejected: u64, reasons: &mut String, encoding: Encoding) -> Accepted {
    let data_points = analytics::data_points(ctx.tenant, &points);
    let total = points.len();
    let split = batches::split(ctx.tenant, ctx.request_id, points, MAX_MESSAGE_BYTES);
    if split.oversized > 0 {
        if !reasons.is_empty() {
            reasons.push_str("; ");
        }
        reasons.push_str(&format!("{} points larger than {MAX_MESSAGE_BYTES} bytes", split.oversized));
    }
    let rejected = rejected + split.oversized as u64;
    Accepted {
        messages: split.messages,
        data_points,
        accepted: total - split.oversized,
        rejected,
        response: metrics_response(rejected, reasons, encoding),
    }
}

/// `ExportMetricsServiceResponse`: empty when everything was accepted, with
/// `partial_success` otherwise.
fn metrics_response(rejected: u64, message: &str, encoding: Encoding) -> Vec<u8> {
    let partial = (rejected > 0).then(|| ExportMetricsPartialSuccess {
        rejected_data_points: rejected as i64,
        error_message: message.to_owned(),
    });
    match encoding {
        Encoding::Protobuf => {
            prost::Message::encode_to_vec(&ExportMetricsServiceResponse { partial_success: partial })
        }
        Encoding::Json => match partial {
            // int64 is a string in the protobuf JSON mapping.
            Some(p) => serde_json::json!({ "partialSuccess": {
                "rejectedDataPoints": p.rejected_data_points.to_string(),
                "errorMessage": p.error_message,
            }}),
            None => serde_json::json!({}),
        }
        .to_string()
        .into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use proto::point::Batch;

    const CTX: Context = Context { tenant: "dev", request_id: "r1", now_unix_nano: 1_800_000_000_000_000_000 };

    #[test]
    fn accepted_points_reach_the_queue_and_analytics() {
        let body = br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[
            {"name":"g","gauge":{"dataPoints":[{"asDouble":1},{"asDouble":2}]}}]}]}]}"#;
        let a = metrics(&CTX, body, Encoding::Json).unwrap();
        assert_eq!((a.accepted, a.rejected), (2, 0));
        let batch = Batch::decode(a.messages[0].as_slice()).unwrap();
        assert_eq!(batch.tenant, "dev");
        assert_eq!(batch.points.len(), 2);
        assert_eq!(a.data_points.len(), 1);
        assert_eq!(a.response, b"{}");
    }

    #[test]
    fn partial_success_names_what_was_rejected() {
        let body = br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[
            {"name":"g","gauge":{"dataPoints":[{"asDouble":1},{"asDouble":"NaN"}]}}]}]}]}"#;
        let a = metrics(&CTX, body, Encoding::Json).unwrap();
        assert_eq!((a.accepted, a.rejected), (1, 1));
        let json: serde_json::Value = serde_json::from_slice(&a.response).unwrap();
        assert_eq!(json["partialSuccess"]["rejectedDataPoints"], "1");
        assert_eq!(json["partialSuccess"]["errorMessage"], "metric g: non-finite value NaN");
    }

    #[test]
    fn protobuf_in_protobuf_out() {
        use proto::otlp::metrics::*;
        let req = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: "s".into(),
                        data: Some(metric::Data::Sum(Sum {
                            aggregation_temporality: temporality::CUMULATIVE,
                            data_points: vec![NumberDataPoint::default()],
                            ..Default::default()
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let a = metrics(&CTX, &req.encode_to_vec(), Encoding::Protobuf).unwrap();
        let resp = ExportMetricsServiceResponse::decode(a.response.as_slice()).unwrap();
        let partial = resp.partial_success.unwrap();
        assert_eq!(partial.rejected_data_points, 1);
        assert!(partial.error_message.contains("cumulative"));
        assert!(a.messages.is_empty());
    }

    #[test]
    fn undecodable_bodies_are_errors() {
        let err = metrics(&CTX, b"{", Encoding::Json).unwrap_err();
        assert_eq!(err.status(), 400);
    }
}
