//! Realistic OTLP requests for benchmarks and load runs: the shapes the
//! performance targets are stated for.

use crate::otlp::common::{any_value, AnyValue, KeyValue};
use crate::otlp::metrics::*;
use crate::otlp::resource::Resource;
use crate::otlp::trace::{ExportTraceServiceRequest, ResourceSpans, ScopeSpans, Span, Status};

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue { key: k.into(), value: Some(AnyValue { value: Some(any_value::Value::StringValue(v.into())) }) }
}

fn resource() -> Resource {
    Resource { attributes: vec![kv("service.name", "checkout"), kv("service.version", "1.4.2"), kv("host.name", "web-17")] }
}

/// A metrics export of `points` data points: 20 metrics (gauges, delta sums
/// and delta histograms with 10 buckets in turn), each data point with 5
/// attributes, under 3 resource attributes, all at `time_unix_nano`.
pub fn metrics_request(points: usize, time_unix_nano: u64) -> ExportMetricsServiceRequest {
    let per_metric = points.div_ceil(20);
    let mut metrics = Vec::new();
    let mut made = 0;
    for m in 0..20 {
        let n = per_metric.min(points - made);
        made += n;
        let attrs = |i: usize| {
            vec![
                kv("http.route", &format!("/api/v1/items/{}", i % 10)),
                kv("http.method", ["GET", "POST", "PUT"][i % 3]),
                kv("http.status_code", ["200", "404", "500"][i % 3]),
                kv("region", &format!("eu-{}", i % 4)),
                kv("instance", &format!("i-{i:04}")),
            ]
        };
        let data = match m % 3 {
            0 => metric::Data::Gauge(Gauge {
                data_points: (0..n)
                    .map(|i| NumberDataPoint {
                        attributes: attrs(i),
                        time_unix_nano,
                        value: Some(number_data_point::Value::AsDouble(i as f64 * 1.5)),
                        ..Default::default()
                    })
                    .collect(),
            }),
            1 => metric::Data::Sum(Sum {
                aggregation_temporality: temporality::DELTA,
                is_monotonic: true,
                data_points: (0..n)
                    .map(|i| NumberDataPoint {
                        attributes: attrs(i),
                        time_unix_nano,
                        value: Some(number_data_point::Value::AsInt(i as i64)),
                        ..Default::default()
                    })
                    .collect(),
            }),
            _ => metric::Data::Histogram(Histogram {
                aggregation_temporality: temporality::DELTA,
                data_points: (0..n)
                    .map(|i| HistogramDataPoint {
                        attributes: attrs(i),
                        time_unix_nano,
                        count: 55,
                        sum: Some(1234.5),
                        min: Some(0.5),
                        max: Some(900.0),
                        explicit_bounds: vec![1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0],
                        bucket_counts: (1..=10).collect(),
                        ..Default::default()
                    })
                    .collect(),
            }),
        };
        metrics.push(Metric { name: format!("app.metric_{m:02}"), unit: "ms".into(), data: Some(data), ..Default::default() });
    }
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource()),
            scope_metrics: vec![ScopeMetrics { metrics, ..Default::default() }],
        }],
    }
}

/// `n` request latencies in ms, log-normal around 40 ms (σ = 1.2 in log
/// space, so a long tail), deterministic for a `seed` (splitmix64).
pub fn latencies(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed;
    let mut next = move || {
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let (u1, u2) = (next().max(1e-12), next());
            (40f64.ln() + 1.2 * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()).exp()
        })
        .collect()
}

/// A metrics export of one gauge `metric` in ms with the point attributes
/// `attrs`: one data point per (unix nanoseconds, value).
pub fn gauge_request(metric: &str, attrs: &[(&str, &str)], points: &[(u64, f64)]) -> ExportMetricsServiceRequest {
    let data_points = points
        .iter()
        .map(|&(time_unix_nano, v)| NumberDataPoint {
            attributes: attrs.iter().map(|(k, v)| kv(k, v)).collect(),
            time_unix_nano,
            value: Some(number_data_point::Value::AsDouble(v)),
            ..Default::default()
        })
        .collect();
    let data = metric::Data::Gauge(Gauge { data_points });
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource()),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric { name: metric.into(), unit: "ms".into(), data: Some(data), ..Default::default() }],
                ..Default::default()
            }],
        }],
    }
}

/// A traces export of `spans` spans over 10 operations, each with 5
/// attributes, ending around `time_unix_nano`.
pub fn traces_request(spans: usize, time_unix_nano: u64) -> ExportTraceServiceRequest {
    spans_request(spans, 10, time_unix_nano)
}

/// Series of the "10k" load workload (W1, `cargo xtask bench-load`).
pub const W1_SERIES: usize = 10_000;
/// Points per request of the load workloads.
pub const LOAD_POINTS_PER_REQUEST: usize = 1000;

/// The `request`-th metrics export of a load workload over `series` series
/// (`cargo xtask bench-load`): [`LOAD_POINTS_PER_REQUEST`] points, one for
/// each of the next 1,000 series in turn, so that with one request a second
/// every series gets a point every `series / 1000` seconds. A third of the
/// series are gauges, a third counters (of 10 metrics, the even ones delta,
/// the odd ones cumulative since `start_unix_nano`), a third latency
/// histograms (delta, 10 buckets, 10 samples a point); 30 metrics in all,
/// each series told apart by its `instance` label.
pub fn load_request(request: u64, series: usize, time_unix_nano: u64, start_unix_nano: u64) -> ExportMetricsServiceRequest {
    let per = LOAD_POINTS_PER_REQUEST.min(series);
    let first = (request as usize * per) % series;
    let ids: Vec<usize> = (0..per).map(|i| (first + i) % series).collect();
    let elapsed_s = time_unix_nano.saturating_sub(start_unix_nano) / 1_000_000_000;
    let mut metrics = Vec::new();
    for kind in 0..3 {
        for m in 0..10 {
            let mine: Vec<usize> = ids.iter().copied().filter(|s| s % 3 == kind && (s / 3) % 10 == m).collect();
            if mine.is_empty() {
                continue;
            }
            let attrs = |s: usize| vec![kv("instance", &format!("i-{s:05}")), kv("region", &format!("eu-{}", s % 4))];
            let (name, unit, data) = match kind {
                0 => (
                    format!("load.gauge_{m}"),
                    "1",
                    metric::Data::Gauge(Gauge {
                        data_points: mine
                            .iter()
                            .map(|&s| NumberDataPoint {
                                attributes: attrs(s),
                                time_unix_nano,
                                value: Some(number_data_point::Value::AsDouble((s % 100) as f64 + (request % 7) as f64)),
                                ..Default::default()
                            })
                            .collect(),
                    }),
                ),
                1 => {
                    let cumulative = m % 2 == 1;
                    (
                        format!("load.counter_{m}"),
                        "1",
                        metric::Data::Sum(Sum {
                            aggregation_temporality: if cumulative { temporality::CUMULATIVE } else { temporality::DELTA },
                            is_monotonic: true,
                            data_points: mine
                                .iter()
                                .map(|&s| NumberDataPoint {
                                    attributes: attrs(s),
                                    start_time_unix_nano: if cumulative { start_unix_nano } else { 0 },
                                    time_unix_nano,
                                    // Cumulative: 3 a second since the start; delta: 30 a point.
                                    value: Some(number_data_point::Value::AsInt(if cumulative { 3 * elapsed_s as i64 } else { 30 })),
                                    ..Default::default()
                                })
                                .collect(),
                        }),
                    )
                }
                _ => (
                    format!("load.latency_{m}"),
                    "ms",
                    metric::Data::Histogram(Histogram {
                        aggregation_temporality: temporality::DELTA,
                        data_points: mine
                            .iter()
                            .map(|&s| HistogramDataPoint {
                                attributes: attrs(s),
                                time_unix_nano,
                                count: 10,
                                sum: Some(420.0),
                                min: Some(2.0),
                                max: Some(180.0),
                                explicit_bounds: vec![5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0],
                                bucket_counts: vec![1, 1, 2, 3, 2, 1, 0, 0, 0, 0],
                                ..Default::default()
                            })
                            .collect(),
                    }),
                ),
            };
            metrics.push(Metric { name, unit: unit.into(), data: Some(data), ..Default::default() });
        }
    }
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource()),
            scope_metrics: vec![ScopeMetrics { metrics, ..Default::default() }],
        }],
    }
}

/// A traces export of `spans` spans over `operations` operations (span
/// names), each with 5 attributes, ending around `time_unix_nano`.
pub fn spans_request(spans: usize, operations: usize, time_unix_nano: u64) -> ExportTraceServiceRequest {
    let operations = operations.max(1);
    let spans = (0..spans)
        .map(|i| Span {
            trace_id: vec![(i % 251) as u8; 16],
            span_id: vec![(i % 241) as u8; 8],
            name: format!("GET /api/v1/items/{}", i % operations),
            kind: 2,
            start_time_unix_nano: time_unix_nano - 1_000_000 * (1 + (i as u64 % 500)),
            end_time_unix_nano: time_unix_nano,
            attributes: vec![
                kv("http.method", "GET"),
                kv("http.route", &format!("/api/v1/items/{}", i % operations)),
                kv("http.status_code", "200"),
                kv("net.peer.ip", &format!("10.0.{}.{}", i % 250, i % 200)),
                kv("user_agent.original", "Mozilla/5.0"),
            ],
            status: Some(Status { code: if i % 50 == 0 { 2 } else { 0 }, message: String::new() }),
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans { resource: Some(resource()), scope_spans: vec![ScopeSpans { spans, ..Default::default() }] }],
    }
}

/// The OTLP JSON encoding of a metrics request (hex ids, int64 as strings,
/// integer enums, lowerCamelCase), as an SDK's JSON exporter writes it.
pub fn metrics_json(req: &ExportMetricsServiceRequest) -> String {
    use serde_json::{json, Value};
    let kvs = |attrs: &[KeyValue]| -> Value {
        attrs
            .iter()
            .map(|a| {
                let v = match a.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(any_value::Value::StringValue(s)) => json!({ "stringValue": s }),
                    _ => json!({}),
                };
                json!({ "key": a.key, "value": v })
            })
            .collect()
    };
    let metrics: Vec<Value> = req.resource_metrics[0].scope_metrics[0]
        .metrics
        .iter()
        .map(|m| {
            let data = match &m.data {
                Some(metric::Data::Gauge(g)) => {
                    json!({ "gauge": { "dataPoints": g.data_points.iter().map(|p| number(p, &kvs)).collect::<Vec<_>>() } })
                }
                Some(metric::Data::Sum(s)) => json!({ "sum": {
                    "aggregationTemporality": s.aggregation_temporality, "isMonotonic": s.is_monotonic,
                    "dataPoints": s.data_points.iter().map(|p| number(p, &kvs)).collect::<Vec<_>>() } }),
                Some(metric::Data::Histogram(h)) => json!({ "histogram": {
                    "aggregationTemporality": h.aggregation_temporality,
                    "dataPoints": h.data_points.iter().map(|p| json!({
                        "attributes": kvs(&p.attributes), "timeUnixNano": p.time_unix_nano.to_string(),
                        "count": p.count.to_string(), "sum": p.sum, "min": p.min, "max": p.max,
                        "explicitBounds": p.explicit_bounds,
                        "bucketCounts": p.bucket_counts.iter().map(u64::to_string).collect::<Vec<_>>(),
                    })).collect::<Vec<_>>() } }),
                _ => json!({}),
            };
            let mut obj = json!({ "name": m.name, "unit": m.unit });
            if let (Value::Object(o), Value::Object(d)) = (&mut obj, data) {
                o.extend(d);
            }
            obj
        })
        .collect();
    let resource = req.resource_metrics[0].resource.as_ref().map(|r| kvs(&r.attributes)).unwrap_or(Value::Null);
    json!({ "resourceMetrics": [{ "resource": { "attributes": resource }, "scopeMetrics": [{ "metrics": metrics }] }] }).to_string()
}

fn number(p: &NumberDataPoint, kvs: &dyn Fn(&[KeyValue]) -> serde_json::Value) -> serde_json::Value {
    let mut v = serde_json::json!({ "attributes": kvs(&p.attributes), "timeUnixNano": p.time_unix_nano.to_string() });
    match p.value {
        Some(number_data_point::Value::AsDouble(d)) => v["asDouble"] = d.into(),
        Some(number_data_point::Value::AsInt(i)) => v["asInt"] = i.to_string().into(),
        None => {}
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{self, Encoding};
    use prost::Message;

    #[test]
    fn fixtures_have_the_stated_shape_and_json_matches_protobuf() {
        let t = 1_800_000_000_000_000_000;
        let req = metrics_request(1000, t);
        let n = crate::normalize::metrics::normalize(req.clone(), t);
        assert_eq!((n.len(), n.rejected), (1000, 0));
        assert_eq!(n.points()[0].labels.len(), 8);
        let json = metrics_json(&req);
        assert_eq!(decode::metrics(json.as_bytes(), Encoding::Json).unwrap(), req);
        assert!(req.encode_to_vec().len() > 100_000);
        let spans = traces_request(1000, t);
        assert_eq!(crate::normalize::traces::normalize(&spans, t).rejected, 0);
    }

    #[test]
    fn ten_load_requests_give_each_of_the_10k_series_one_point() {
        let t = 1_800_000_000_000_000_000;
        let mut seen = std::collections::HashMap::new();
        for r in 0..10 {
            let n = crate::normalize::metrics::normalize(load_request(r, W1_SERIES, t, t - 60_000_000_000), t);
            assert_eq!((n.len(), n.rejected), (LOAD_POINTS_PER_REQUEST, 0));
            for p in n.points() {
                let instance = p.labels.iter().find(|l| l.key == "instance").map(|l| l.value.clone());
                *seen.entry((p.metric.clone(), instance)).or_insert(0) += 1;
            }
        }
        assert_eq!(seen.len(), W1_SERIES);
        assert!(seen.values().all(|&n| n == 1));
        let metrics: std::collections::HashSet<_> = seen.keys().map(|(m, _)| m.clone()).collect();
        assert_eq!(metrics.len(), 30, "10 gauges, 10 counters, 10 histograms");
        // The 11th request starts the round again: the same series as the first.
        let series_of = |r| {
            let n = crate::normalize::metrics::normalize(load_request(r, W1_SERIES, t, t), t);
            n.points().iter().map(|p| (p.metric.clone(), p.labels.clone())).collect::<Vec<_>>()
        };
        assert_eq!(series_of(10), series_of(0));
    }
}
