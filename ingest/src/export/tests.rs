use super::*;
use prost::Message;

const NOW: u64 = 1_800_000_000_000_000_000;
const CTX: Context<'static> = Context { tenant: "dev", now_unix_nano: NOW, seed: 7, analytics_one_in: 1 };

fn metrics_json(points: &str) -> Vec<u8> {
    format!(r#"{{"resourceMetrics":[{{"scopeMetrics":[{{"metrics":[{{"name":"g","gauge":{{"dataPoints":[{points}]}}}}]}}]}}]}}"#)
        .into_bytes()
}

#[test]
fn accepted_points_reach_the_queue_and_analytics() {
    let a = export(Signal::Metrics, &CTX, &metrics_json(r#"{"asDouble":1},{"asDouble":2}"#), Encoding::Json).unwrap();
    assert_eq!((a.points, a.rejected), (2, 0));
    let batch = proto::archive::decode(&a.messages[0]).unwrap().batches.remove(0);
    assert_eq!(batch.tenant, "dev");
    assert_eq!(batch.points.len(), 2);
    assert_eq!(a.data_points.len(), 1);
    assert_eq!(a.response, b"{}");
    // A fully accepted protobuf export answers an empty message.
    let pb = export(Signal::Metrics, &CTX, &[], Encoding::Protobuf).unwrap();
    assert!(pb.response.is_empty() && pb.messages.is_empty());
}

#[test]
fn one_request_in_n_writes_analytics_and_every_one_is_queued() {
    let body = metrics_json(r#"{"asDouble":1},{"asDouble":2}"#);
    let at = |seed| Context { seed, analytics_one_in: 10, ..CTX };
    let skipped = export(Signal::Metrics, &at(7), &body, Encoding::Json).unwrap();
    assert!(skipped.data_points.is_empty());
    assert_eq!((skipped.points, skipped.messages.len()), (2, 1), "the queue gets every request");
    let written = export(Signal::Metrics, &at(20), &body, Encoding::Json).unwrap();
    assert_eq!(written.data_points.len(), 1);
    assert_eq!(written.data_points[0].doubles[6], 10.0, "it stands for ten requests");
}

#[test]
fn partial_success_names_what_was_rejected() {
    let a = export(Signal::Metrics, &CTX, &metrics_json(r#"{"asDouble":1},{"asDouble":"NaN"}"#), Encoding::Json).unwrap();
    assert_eq!((a.points, a.rejected), (1, 1));
    let json: serde_json::Value = serde_json::from_slice(&a.response).unwrap();
    assert_eq!(json["partialSuccess"]["rejectedDataPoints"], "1");
    assert_eq!(json["partialSuccess"]["errorMessage"], "metric g: non-finite value NaN");
}

#[test]
fn each_signal_answers_with_its_own_response_type() {
    let spans = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"s","startTimeUnixNano":"5","endTimeUnixNano":"4"}]}]}]}"#;
    let a = export(Signal::Traces, &CTX, spans, Encoding::Json).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&a.response).unwrap();
    assert_eq!(json["partialSuccess"]["rejectedSpans"], "1");

    let logs_req = proto::otlp::logs::ExportLogsServiceRequest {
        resource_logs: vec![proto::otlp::logs::ResourceLogs {
            scope_logs: vec![proto::otlp::logs::ScopeLogs {
                log_records: vec![proto::otlp::logs::LogRecord { time_unix_nano: 3, ..Default::default() }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let a = export(Signal::Logs, &CTX, &logs_req.encode_to_vec(), Encoding::Protobuf).unwrap();
    let resp = proto::otlp::logs::ExportLogsServiceResponse::decode(a.response.as_slice()).unwrap();
    assert_eq!(resp.partial_success.unwrap().rejected_log_records, 1);
}

#[test]
fn undecodable_bodies_are_errors() {
    for signal in [Signal::Metrics, Signal::Traces, Signal::Logs] {
        let err = export(signal, &CTX, b"{", Encoding::Json).unwrap_err();
        assert_eq!(err.status(), 400);
        let err = export(signal, &CTX, b"\x0a\xff", Encoding::Protobuf).unwrap_err();
        assert_eq!(err.status(), 400);
    }
}

#[test]
fn request_ids_follow_the_body() {
    let id = |t: &str, b: &[u8]| request_id(t, b, None);
    assert_eq!(id("t", b"abc"), id("t", b"abc"));
    assert_ne!(id("t", b"abc"), id("t", b"abd"));
    assert_ne!(id("t", b"abc"), id("u", b"abc"));
    // Trailing zero bytes and a moved tenant/body boundary still differ.
    assert_ne!(id("t", b"abc"), id("t", b"abc\0"));
    assert_ne!(id("ta", b"bc"), id("t", b"abc"));
    assert_eq!(id("t", b"").len(), 32);
    assert_ne!(request_id("t", b"abc", Some((1, 2))), request_id("t", b"abc", Some((1, 3))));
}

/// The batch ids of an export's messages.
fn batch_ids(a: &Accepted) -> Vec<String> {
    a.messages.iter().flat_map(|m| proto::archive::decode(m).unwrap().batches).map(|b| b.batch_id).collect()
}

#[test]
fn a_retried_body_keeps_its_ids_and_a_resent_timeless_body_gets_new_ones() {
    let at = |seconds: u64, seed: u64| Context { tenant: "dev", now_unix_nano: NOW + seconds * 1_000_000_000, seed, analytics_one_in: 1 };
    // With timestamps: the same body sent again (a retry) has the same
    // batch ids, which the rollup applies once.
    let timed = metrics_json(&format!(r#"{{"asDouble":1,"timeUnixNano":"{}"}}"#, NOW - 1_000_000_000));
    let first = export(Signal::Metrics, &at(0, 1), &timed, Encoding::Json).unwrap();
    let again = export(Signal::Metrics, &at(10, 2), &timed, Encoding::Json).unwrap();
    assert_eq!(batch_ids(&first), batch_ids(&again));
    // Without: each send is a new point at its receive time (a heartbeat),
    // even within the same millisecond.
    let timeless = metrics_json(r#"{"asDouble":1}"#);
    let first = export(Signal::Metrics, &at(0, 1), &timeless, Encoding::Json).unwrap();
    let second = export(Signal::Metrics, &at(0, 2), &timeless, Encoding::Json).unwrap();
    assert_eq!(batch_ids(&first).len(), 1);
    assert_ne!(batch_ids(&first), batch_ids(&second));
    // Log records without time take it too.
    let logs = br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"severityNumber":9}]}]}]}"#;
    let a = export(Signal::Logs, &at(0, 1), logs, Encoding::Json).unwrap();
    let b = export(Signal::Logs, &at(0, 2), logs, Encoding::Json).unwrap();
    assert_ne!(batch_ids(&a), batch_ids(&b));
}

#[test]
fn paths_of_urls() {
    assert_eq!(path_of("http://127.0.0.1:8787/v1/metrics"), "/v1/metrics");
    assert_eq!(path_of("https://ingest.example.com/v1/logs?x=1#f"), "/v1/logs");
    assert_eq!(path_of("http://host"), "/");
    assert_eq!(path_of("http://host/"), "/");
    assert_eq!(path_of("http://host?q"), "/");
}
