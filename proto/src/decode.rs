//! Transport-free OTLP decoders: bytes in, typed request out. Content type,
//! compression and size caps are the Worker's business, before these run.

use crate::otlp::logs::ExportLogsServiceRequest;
use crate::otlp::metrics::ExportMetricsServiceRequest;
use crate::otlp::trace::ExportTraceServiceRequest;
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

/// Decodes an `ExportTraceServiceRequest`.
pub fn traces(body: &[u8], encoding: Encoding) -> Result<ExportTraceServiceRequest, DecodeError> {
    Ok(match encoding {
        Encoding::Protobuf => ExportTraceServiceRequest::decode(body)?,
        Encoding::Json => serde_json::from_slice(body)?,
    })
}

/// Decodes an `ExportLogsServiceRequest`.
pub fn logs(body: &[u8], encoding: Encoding) -> Result<ExportLogsServiceRequest, DecodeError> {
    Ok(match encoding {
        Encoding::Protobuf => ExportLogsServiceRequest::decode(body)?,
        Encoding::Json => serde_json::from_slice(body)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// A metrics export whose one resource attribute is an array nested
    /// `depth` levels deep.
    fn nested(depth: usize) -> String {
        let mut v = String::from(r#"{"stringValue":"x"}"#);
        for _ in 0..depth {
            v = format!(r#"{{"arrayValue":{{"values":[{v}]}}}}"#);
        }
        format!(r#"{{"resourceMetrics":[{{"resource":{{"attributes":[{{"key":"k","value":{v}}}]}}}}]}}"#)
    }

    #[test]
    fn nesting_is_bounded_in_both_encodings() {
        let ok = metrics(nested(crate::otlp::common::MAX_VALUE_DEPTH - 1).as_bytes(), Encoding::Json).unwrap();
        assert_eq!(ok.resource_metrics.len(), 1);
        let e = metrics(nested(crate::otlp::common::MAX_VALUE_DEPTH).as_bytes(), Encoding::Json).unwrap_err().to_string();
        assert!(e.contains("nested more than 32 levels"), "{e}");
        // Far deeper: refused as quickly, before the stack grows with it.
        let e = metrics(nested(20_000).as_bytes(), Encoding::Json).unwrap_err().to_string();
        assert!(e.contains("nested") || e.contains("recursion"), "{e}");
        // Protobuf: prost stops at 100 nested messages (two per level).
        let deep = ok.encode_to_vec();
        assert!(metrics(&deep, Encoding::Protobuf).is_ok());
        let mut v = crate::otlp::common::AnyValue { value: Some(crate::otlp::common::any_value::Value::StringValue("x".into())) };
        for _ in 0..60 {
            v = crate::otlp::common::AnyValue {
                value: Some(crate::otlp::common::any_value::Value::ArrayValue(crate::otlp::common::ArrayValue { values: vec![v] })),
            };
        }
        let too_deep = v.encode_to_vec();
        assert!(crate::otlp::common::AnyValue::decode(too_deep.as_slice()).unwrap_err().to_string().contains("recursion"));
    }

    #[test]
    fn empty_bodies_are_empty_requests() {
        assert!(metrics(b"", Encoding::Protobuf).unwrap().resource_metrics.is_empty());
        assert!(metrics(b"{}", Encoding::Json).unwrap().resource_metrics.is_empty());
    }

    #[test]
    fn spans_and_logs_in_json_and_protobuf() {
        let json = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c",
            "spanId":"eee19b7ec3c1b174","name":"GET /","kind":2,"startTimeUnixNano":"1","endTimeUnixNano":"2",
            "status":{"code":2},"unknown":{"x":1}}]}]}]}"#;
        let t = traces(json, Encoding::Json).unwrap();
        let span = &t.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.trace_id.len(), 16);
        assert_eq!(span.span_id, [0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74]);
        assert_eq!((span.kind, span.status.as_ref().unwrap().code), (2, 2));
        assert_eq!(traces(&t.encode_to_vec(), Encoding::Protobuf).unwrap(), t);
        let named = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":"SPAN_KIND_CLIENT","status":{"code":"STATUS_CODE_OK"}}]}]}]}"#;
        let span = &traces(named, Encoding::Json).unwrap().resource_spans[0].scope_spans[0].spans[0];
        assert_eq!((span.kind, span.status.as_ref().unwrap().code), (3, 1));
        assert!(traces(br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"xyz"}]}]}]}"#, Encoding::Json).is_err());

        let json = br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"5","severityNumber":17,"severityText":"ERROR","body":{"stringValue":"boom"}}]}]}]}"#;
        let l = logs(json, Encoding::Json).unwrap();
        let rec = &l.resource_logs[0].scope_logs[0].log_records[0];
        assert_eq!((rec.time_unix_nano, rec.severity_number, rec.severity_text.as_str()), (5, 17, "ERROR"));
        assert_eq!(logs(&l.encode_to_vec(), Encoding::Protobuf).unwrap(), l);
    }

    #[test]
    fn invalid_utf8_in_protobuf_is_a_decode_error() {
        // Metric { name: "\xff" } inside ScopeMetrics inside ResourceMetrics.
        let metric = [0x0a, 0x01, 0xff];
        let scope = [&[0x12, metric.len() as u8][..], &metric].concat();
        let resource = [&[0x12, scope.len() as u8][..], &scope].concat();
        let request = [&[0x0a, resource.len() as u8][..], &resource].concat();
        assert!(matches!(metrics(&request, Encoding::Protobuf), Err(DecodeError::Protobuf(_))));
        let json = b"{\"resourceMetrics\":[{\"scopeMetrics\":[{\"metrics\":[{\"name\":\"\xff\"}]}]}]}";
        assert!(matches!(metrics(json, Encoding::Json), Err(DecodeError::Json(_))));
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

    #[test]
    fn json_doubles_decode_to_the_exact_value_sent() {
        // Shortest round-trip spellings that a fast, inexact parser reads
        // one unit in the last place off.
        for v in [99.35384876983359f64, 0.1, 2.2250738585072014e-308, 9007199254740993.0, 1.7976931348623157e308, 5e-324] {
            let json = format!(
                r#"{{"resourceMetrics":[{{"scopeMetrics":[{{"metrics":[{{"gauge":{{"dataPoints":[{{"asDouble":{v:?}}}]}}}}]}}]}}]}}"#
            );
            let req = metrics(json.as_bytes(), Encoding::Json).unwrap();
            let Some(crate::otlp::metrics::metric::Data::Gauge(g)) = &req.resource_metrics[0].scope_metrics[0].metrics[0].data else {
                panic!("a gauge")
            };
            let got = match g.data_points[0].value {
                Some(crate::otlp::metrics::number_data_point::Value::AsDouble(d)) => d,
                ref other => panic!("{other:?}"),
            };
            assert_eq!(got.to_bits(), v.to_bits(), "{v:?} read as {got:?}");
        }
    }
}
