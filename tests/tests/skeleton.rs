//! The walking skeleton: OTLP/HTTP JSON into ingest → queue → R2 archive →
//! rollup into D1 → a percentile out of dashboard-api's Prometheus API.

use e2e::*;
use serde_json::json;
use std::time::Duration;

#[test]
fn a_gauge_and_a_histogram_go_all_the_way_to_a_p99() -> anyhow::Result<()> {
    let stack = stack();
    let gauge = unique("skeleton.latency");
    let histogram = unique("skeleton.size");
    // A whole minute ago, so every point lands in one 1-minute bucket.
    let t0 = (now_nanos() / 60_000_000_000 - 1) * 60_000_000_000;
    let points: Vec<_> = (1..=100).map(|v| json!({ "timeUnixNano": (t0 + v * 100_000_000).to_string(), "asDouble": v as f64 })).collect();
    let body = json!({ "resourceMetrics": [{
        "resource": { "attributes": [{ "key": "service.name", "value": { "stringValue": "skeleton" } }] },
        "scopeMetrics": [{ "metrics": [
            { "name": gauge, "unit": "ms", "gauge": { "dataPoints": points } },
            { "name": histogram, "unit": "By", "histogram": { "aggregationTemporality": 1, "dataPoints": [{
                "timeUnixNano": t0.to_string(), "count": "10", "sum": 1000, "min": 1, "max": 500,
                "explicitBounds": [10, 100], "bucketCounts": ["2", "5", "3"] }] } }
        ]}]
    }]});
    let r = post_metrics_json(&stack, &body.to_string())?;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({}), "every point accepted, no partial success");
    assert!(r.content_type.starts_with("application/json"));

    // Up to five minutes after the points, the default window still holds them.
    let at = (t0 / 1_000_000_000 + 240) as f64;
    let p99 = format!("{}{{quantile=\"0.99\"}}", gauge.replace('.', "_"));
    let reply = rollup_until(&stack, Duration::from_secs(60), || {
        let r = instant_query(&stack, &p99, at)?;
        assert_eq!(r.status, 200, "{}", r.text());
        let j = r.json();
        Ok((j["data"]["result"].as_array().is_some_and(|a| !a.is_empty())).then_some(j))
    })?;
    assert_eq!(reply["status"], "success");
    assert_eq!(reply["data"]["resultType"], "vector");
    let sample = &reply["data"]["result"][0];
    assert_eq!(sample["value"][1], "99", "{reply}");
    assert_eq!(sample["value"][0], at);
    assert_eq!(sample["metric"]["__name__"], gauge.replace('.', "_"));
    assert_eq!(sample["metric"]["quantile"], "0.99");
    assert_eq!(sample["metric"]["service_name"], "skeleton");

    // The histogram's buckets (-inf,10], (10,100], (100,inf) with min 1 and
    // max 500 are represented by 5.5, 55 and 300: its median is 55.
    let median = format!("{}{{quantile=\"0.5\"}}", histogram.replace('.', "_"));
    let r = instant_query(&stack, &median, at)?;
    assert_eq!(r.json()["data"]["result"][0]["value"][1], "55", "{}", r.text());
    let r = instant_query(&stack, &format!("{}{{quantile=\"1\"}}", histogram.replace('.', "_")), at)?;
    assert_eq!(r.json()["data"]["result"][0]["value"][1], "500");

    // The rollup's report shows the archive it applied.
    let status = rollup_status(&stack)?;
    assert!(status["last_run"]["listed"].as_u64().is_some(), "{status}");
    Ok(())
}
