//! Malformed, oversized and hostile requests get the right 4xx with an OTLP
//! `google.rpc.Status` body in the request's encoding, never a 5xx, and the
//! Worker keeps serving valid requests afterwards.

use e2e::*;
use flate2::{write::GzEncoder, Compression};
use prost::Message;
use std::io::Write;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn auth() -> String {
    format!("Bearer {DEV_INGEST_KEY}")
}

#[test]
fn bad_requests_get_the_otlp_status_they_deserve() -> anyhow::Result<()> {
    let s = stack();
    let auth = auth();
    let url = |p: &str| format!("{}{p}", s.ingest);
    let json = ("content-type", "application/json");
    let pb = ("content-type", "application/x-protobuf");
    let big = vec![b' '; 5 << 20];
    let bomb = gzip(&vec![b' '; 40 << 20]);
    // (case, path, headers, body, status, message)
    type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, Vec<u8>, u16, &'a str);
    let cases: Vec<Case<'_>> = vec![
        ("unknown path", "/v1/nope", vec![json], b"{}".to_vec(), 404, "no endpoint"),
        ("wrong content type", "/v1/metrics", vec![("content-type", "text/html")], b"{}".to_vec(), 415, "unsupported content type"),
        ("no content type", "/v1/traces", vec![], b"{}".to_vec(), 415, "unsupported content type"),
        ("broken JSON", "/v1/metrics", vec![json], b"{\"resourceMetrics\":[".to_vec(), 400, "invalid OTLP JSON"),
        ("JSON of the wrong shape", "/v1/logs", vec![json], b"[1,2]".to_vec(), 400, "invalid OTLP JSON"),
        ("broken protobuf", "/v1/traces", vec![pb], vec![0x0a, 0xff, 0xff, 0x01], 400, "invalid protobuf"),
        ("unknown encoding", "/v1/metrics", vec![json, ("content-encoding", "br")], b"{}".to_vec(), 415, "content encoding"),
        ("not really gzip", "/v1/metrics", vec![json, ("content-encoding", "gzip")], b"{}".to_vec(), 400, "not valid gzip"),
        ("too large as sent", "/v1/metrics", vec![json], big, 413, "larger than 4194304 bytes"),
        ("gzip bomb", "/v1/metrics", vec![json, ("content-encoding", "gzip")], bomb, 413, "after decompression"),
    ];
    for (what, path, mut headers, body, status, message) in cases {
        headers.push(("authorization", &auth));
        let r = post(&url(path), &headers, &body)?;
        assert_eq!(r.status, status, "{what}: {}", r.text());
        let text = if r.content_type.starts_with("application/x-protobuf") {
            proto::otlp::status::Status::decode(r.body.as_slice())?.message
        } else {
            r.json()["message"].as_str().unwrap_or_default().to_owned()
        };
        assert!(text.contains(message), "{what}: {text:?} lacks {message:?}");
    }

    let r = get(&url("/v1/metrics"), &[("authorization", &auth)])?;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));

    // Still serving valid requests.
    let r = post(&url("/v1/metrics"), &[json, ("authorization", &auth)], br#"{"resourceMetrics":[]}"#)?;
    assert_eq!((r.status, r.text().as_str()), (200, "{}"));
    Ok(())
}

#[test]
fn partial_success_reports_rejected_spans_and_log_records() -> anyhow::Result<()> {
    let s = stack();
    let auth = auth();
    let t = now_nanos() - 60_000_000_000;
    let spans = format!(
        r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[
            {{"name":"ok","startTimeUnixNano":"{t}","endTimeUnixNano":"{}"}},
            {{"name":"backwards","startTimeUnixNano":"{t}","endTimeUnixNano":"{}"}}]}}]}}]}}"#,
        t + 5_000_000,
        t - 5
    );
    let r = post(&format!("{}/v1/traces", s.ingest), &[("content-type", "application/json"), ("authorization", &auth)], spans.as_bytes())?;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["partialSuccess"]["rejectedSpans"], "1");
    assert!(r.json()["partialSuccess"]["errorMessage"].as_str().unwrap().contains("\"backwards\": ends before it starts"));

    let logs = proto::otlp::logs::ExportLogsServiceRequest {
        resource_logs: vec![proto::otlp::logs::ResourceLogs {
            scope_logs: vec![proto::otlp::logs::ScopeLogs {
                log_records: vec![
                    proto::otlp::logs::LogRecord { time_unix_nano: t, severity_number: 9, ..Default::default() },
                    proto::otlp::logs::LogRecord { time_unix_nano: 1, ..Default::default() },
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let r = post(
        &format!("{}/v1/logs", s.ingest),
        &[("content-type", "application/x-protobuf"), ("content-encoding", "gzip"), ("authorization", &auth)],
        &gzip(&logs.encode_to_vec()),
    )?;
    assert_eq!(r.status, 200);
    assert!(r.content_type.starts_with("application/x-protobuf"));
    let resp = proto::otlp::logs::ExportLogsServiceResponse::decode(r.body.as_slice())?;
    assert_eq!(resp.partial_success.unwrap().rejected_log_records, 1);
    Ok(())
}
