//! Spans → request, error and duration metrics, as the OpenTelemetry
//! Collector's spanmetrics connector names them:
//!
//! | metric | kind | value |
//! | --- | --- | --- |
//! | `traces.span.metrics.calls` | counter | one per span |
//! | `traces.span.metrics.duration` | distribution, ms | each span's exact duration as a sample |
//!
//! Both carry the labels `service.name` (from the resource; `unknown_service`
//! if absent), `span.name`, `span.kind` and `status.code` (the enum names, for
//! example `SPAN_KIND_SERVER`, `STATUS_CODE_ERROR`), and nothing else, which
//! keeps their cardinality that of the service's operations.
//!
//! Spans of one series that end in the same minute become one point of each
//! metric (a count, and the durations as samples). That is exact, because the
//! finest stored resolution is a minute, and it keeps a 1,000-span request
//! down to a few dozen points.

use super::Normalized;
use crate::otlp::common::{any_value, KeyValue};
use crate::otlp::trace::{ExportTraceServiceRequest, SPAN_KINDS, STATUS_CODES};
use crate::point::{Counter, Distribution, Label, Point, Value};
use std::collections::BTreeMap;

pub const CALLS: &str = "traces.span.metrics.calls";
pub const DURATION: &str = "traces.span.metrics.duration";

/// The value of the `service.name` resource attribute.
pub(crate) fn service_name(resource: &[KeyValue]) -> &str {
    resource
        .iter()
        .rev()
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        })
        .unwrap_or("unknown_service")
}

#[derive(Default)]
struct Group {
    latest: u64,
    durations: Vec<f64>,
}

pub fn normalize(req: &ExportTraceServiceRequest, now_unix_nano: u64) -> Normalized {
    let mut out = Normalized::default();
    // (labels, minute) → spans, ordered so that output is deterministic.
    let mut groups: BTreeMap<(Vec<Label>, u64), Group> = BTreeMap::new();
    for rs in &req.resource_spans {
        let resource: &[KeyValue] = rs.resource.as_ref().map_or(&[], |r| &r.attributes);
        let service = service_name(resource);
        for ss in &rs.scope_spans {
            for span in &ss.spans {
                let (start, end) = (span.start_time_unix_nano, span.end_time_unix_nano);
                if start == 0 || end == 0 {
                    out.reject(1, || format!("span {:?}: start or end time missing", span.name));
                    continue;
                }
                if end < start {
                    out.reject(1, || format!("span {:?}: ends before it starts", span.name));
                    continue;
                }
                let end = match out.time(end, now_unix_nano) {
                    Ok(t) => t,
                    Err(e) => {
                        out.reject(1, || format!("span {:?}: {e}", span.name));
                        continue;
                    }
                };
                let kind = SPAN_KINDS.get(span.kind as usize).copied().unwrap_or("SPAN_KIND_UNSPECIFIED");
                let code = span.status.as_ref().map_or(0, |s| s.code);
                let status = STATUS_CODES.get(code as usize).copied().unwrap_or("STATUS_CODE_UNSET");
                let labeled = super::labels::fixed(&[
                    ("service.name", service),
                    ("span.name", &span.name),
                    ("span.kind", kind),
                    ("status.code", status),
                ]);
                out.truncated += labeled.truncated as u64;
                let g = groups.entry((labeled.labels, end / 60_000_000_000)).or_default();
                g.latest = g.latest.max(end);
                g.durations.push((end - start) as f64 / 1e6);
            }
        }
    }
    for ((labels, _), g) in groups {
        let n = g.durations.len();
        let sum: f64 = g.durations.iter().sum();
        let min = g.durations.iter().copied().reduce(f64::min);
        let max = g.durations.iter().copied().reduce(f64::max);
        out.push(Point {
            label_refs: Vec::new(),
            metric: CALLS.into(),
            labels: labels.clone(),
            unit: "1".into(),
            time_unix_nano: g.latest,
            value: Some(Value::Counter(Counter { value: n as f64, monotonic: true, ..Default::default() })),
        });
        out.push(Point {
            label_refs: Vec::new(),
            metric: DURATION.into(),
            labels,
            unit: "ms".into(),
            time_unix_nano: g.latest,
            value: Some(Value::Distribution(Distribution {
                count: n as u64,
                sum,
                min,
                max,
                counts: vec![1; n],
                values: g.durations,
                ..Default::default()
            })),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{self, Encoding};

    const NOW: u64 = 1_800_000_000_000_000_000;
    const MIN: u64 = 60_000_000_000;

    fn span(name: &str, kind: i32, code: i32, start: u64, end: u64) -> String {
        format!(r#"{{"name":"{name}","kind":{kind},"status":{{"code":{code}}},"startTimeUnixNano":"{start}","endTimeUnixNano":"{end}"}}"#)
    }

    fn run(spans: &[String]) -> Normalized {
        let body = format!(
            r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"api"}}}}]}},
                "scopeSpans":[{{"spans":[{}]}}]}}]}}"#,
            spans.join(",")
        );
        normalize(&decode::traces(body.as_bytes(), Encoding::Json).unwrap(), NOW)
    }

    #[test]
    fn spans_become_calls_and_exact_durations_grouped_per_minute() {
        let t = NOW - 10 * MIN;
        let t = t - t % MIN;
        let n = run(&[
            span("GET /", 2, 0, t, t + 1_500_000),
            span("GET /", 2, 0, t + 1, t + 20_000_001),
            span("GET /", 2, 2, t, t + 3_000_000),
            span("GET /", 2, 0, t + MIN, t + MIN + 7_000_000),
        ]);
        assert_eq!(n.rejected, 0);
        // Two series (OK and ERROR) in the first minute, one in the next.
        assert_eq!(n.points().len(), 6);
        let points = n.points();
        let calls: Vec<&Point> = points.iter().filter(|p| p.metric == CALLS).collect();
        let first = calls.iter().find(|p| p.labels.iter().any(|l| l.value == "STATUS_CODE_UNSET") && p.time_unix_nano < t + MIN).unwrap();
        assert_eq!(first.value, Some(Value::Counter(Counter { value: 2.0, monotonic: true, ..Default::default() })));
        let keys: Vec<&str> = first.labels.iter().map(|l| l.key.as_str()).collect();
        assert_eq!(keys, ["service.name", "span.kind", "span.name", "status.code"]);
        assert!(first.labels.iter().any(|l| l.value == "SPAN_KIND_SERVER"));
        let durations = points.iter().find(|p| p.metric == DURATION && p.labels == first.labels && p.time_unix_nano < t + MIN).unwrap();
        match &durations.value {
            Some(Value::Distribution(d)) => {
                assert_eq!(d.values, vec![1.5, 20.0]);
                assert_eq!((d.count, d.sum, d.min, d.max), (2, 21.5, Some(1.5), Some(20.0)));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(durations.unit, "ms");
    }

    #[test]
    fn broken_spans_are_rejected_one_by_one() {
        let t = NOW - MIN;
        let n = run(&[
            span("a", 1, 0, t, t - 1),
            span("b", 1, 0, 0, t),
            span("c", 1, 0, t, t + 10 * 3600 * 1_000_000_000),
            span("d", 1, 0, t, t),
        ]);
        assert_eq!(n.rejected, 3);
        assert_eq!(n.points().len(), 2, "the zero-length span counts");
        let msg = n.error_message();
        assert!(msg.contains("ends before it starts") && msg.contains("missing") && msg.contains("future"), "{msg}");
    }

    #[test]
    fn long_span_and_service_names_are_cut_like_attribute_values() {
        let service = "s".repeat(3000);
        let body = format!(
            r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"{service}"}}}}]}},
                "scopeSpans":[{{"spans":[{}]}}]}}]}}"#,
            span(&"é".repeat(1500), 1, 0, NOW - MIN, NOW - MIN + 1)
        );
        let n = normalize(&decode::traces(body.as_bytes(), Encoding::Json).unwrap(), NOW);
        assert_eq!(n.rejected, 0);
        assert_eq!(n.truncated, 2, "service and span name of the one span");
        let points = n.points();
        for key in ["service.name", "span.name"] {
            let value = &points[0].labels.iter().find(|l| l.key == key).unwrap().value;
            assert!(value.len() <= crate::normalize::labels::MAX_VALUE_BYTES && value.len() >= 1023, "{key}: {}", value.len());
        }
        assert!(n.error_message().contains("were cut"), "{}", n.error_message());
    }

    #[test]
    fn unknown_service_and_out_of_range_enums() {
        let body = format!(r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{}]}}]}}]}}"#, span("x", 42, 9, NOW - MIN, NOW - MIN + 1));
        let n = normalize(&decode::traces(body.as_bytes(), Encoding::Json).unwrap(), NOW);
        let points = n.points();
        let values: Vec<&str> = points[0].labels.iter().map(|l| l.value.as_str()).collect();
        assert_eq!(values, ["unknown_service", "SPAN_KIND_UNSPECIFIED", "x", "STATUS_CODE_UNSET"]);
    }
}
