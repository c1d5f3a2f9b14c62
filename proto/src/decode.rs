//! Transport-free OTLP decoders: bytes in, typed request out. Content type,
//! compression and size caps are the Worker's business, before these run.

use crate::otlp::metrics::ExportMetricsServiceRequest;
use prost::Message;

/// How the body is encoded, taken from its content type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

/// Why a body could not be decoded at all (as opposed to points rejected one by
/// one during normalization).
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The protobuf wire format is broken.
    #[error("invalid protobuf: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// The JSON is malformed or does not follow the OTLP JSON mapping.
    #[error("invalid OTLP JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Decodes an `ExportMetricsServiceRequest`.
pub fn metrics(body: &[u8], encoding: Encoding) -> Result<ExportMetricsServiceRequest, DecodeError> {
    Ok(match encoding {
        Encoding::Protobuf => ExportMetricsServiceRequest::decode(body)?,
        Encoding::Json => serde_json::from_slice(body)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_bodies_are_empty_requests() {
        assert!(metrics(b"", Encoding::Protobuf).unwrap().resource_metrics.is_empty());
        assert!(metrics(b"{}", Encoding::Json).unwrap().resource_metrics.is_empty());
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(matches!(metrics(b"\xff\xff\xff", Encoding::Protobuf), Err(DecodeError::Protobuf(_))));
        assert!(matches!(metrics(b"{\"resourceMetrics\":", Encoding::Json), Err(DecodeError::Json(_))));
        assert!(matches!(metrics(b"[1]", Encoding::Json), Err(DecodeError::Json(_))));
    }

    #[test]
    fn json_and_protobuf_decode_to_the_same_request() {
        let json = br#"{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"api"}}]},
          "scopeMetrics":[{"metrics":[{"name":"m","unit":"ms","gauge":{"dataPoints":[
            {"timeUnixNano":"1700000000000000000","asDouble":1.5,"attributes":[{"key":"k","value":{"intValue":"3"}}]},
            {"timeUnixNano":1700000000000000000,"asInt":"7"}]}}]}]}]}"#;
        let from_json = metrics(json, Encoding::Json).unwrap();
        let bytes = from_json.encode_to_vec();
        let from_pb = metrics(&bytes, Encoding::Protobuf).unwrap();
        assert_eq!(from_json, from_pb);
        let m = &from_pb.resource_metrics[0].scope_metrics[0].metrics[0];
        assert_eq!(m.name, "m");
        match &m.data {
            Some(crate::otlp::metrics::metric::Data::Gauge(g)) => {
                assert_eq!(g.data_points.len(), 2);
                assert_eq!(g.data_points[0].time_unix_nano, 1_700_000_000_000_000_000);
            }
            other => panic!("expected a gauge, got {other:?}"),
        }
    }
}
