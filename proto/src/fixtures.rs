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
    let spans = (0..spans)
        .map(|i| Span {
            trace_id: vec![(i % 251) as u8; 16],
            span_id: vec![(i % 241) as u8; 8],
            name: format!("GET /api/v1/items/{}", i % 10),
            kind: 2,
            start_time_unix_nano: time_unix_nano - 1_000_000 * (1 + (i as u64 % 500)),
            end_time_unix_nano: time_unix_nano,
            attributes: vec![
                kv("http.method", "GET"),
                kv("http.route", &format!("/api/v1/items/{}", i % 10)),
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
}
