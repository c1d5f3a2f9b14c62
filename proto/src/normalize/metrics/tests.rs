use super::*;
use crate::decode::{self, Encoding};

const NOW: u64 = 1_800_000_000_000_000_000;

fn run(metrics_json: &str) -> Normalized {
    let body = format!(
        r#"{{"resourceMetrics":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"api"}}}}]}},
            "scopeMetrics":[{{"metrics":[{metrics_json}]}}]}}]}}"#
    );
    let req = decode::metrics(body.as_bytes(), Encoding::Json).unwrap();
    normalize(req, NOW)
}

fn dist(p: &Point) -> &Distribution {
    match &p.value {
        Some(Value::Distribution(d)) => d,
        other => panic!("expected a distribution, got {other:?}"),
    }
}

#[test]
fn gauge_points_carry_resource_and_point_labels() {
    let n = run(r#"{"name":"cpu","unit":"1","gauge":{"dataPoints":[
        {"timeUnixNano":"1799999000000000000","asDouble":0.5,"attributes":[{"key":"core","value":{"intValue":"1"}}]},
        {"timeUnixNano":"1799999000000000000","asInt":"2"}]}}"#);
    assert_eq!(n.rejected, 0);
    assert_eq!(n.points().len(), 2);
    let p = &n.points()[0];
    assert_eq!(p.metric, "cpu");
    assert_eq!(p.unit, "1");
    assert_eq!(p.time_unix_nano, 1_799_999_000_000_000_000);
    assert_eq!(p.value, Some(Value::Gauge(0.5)));
    assert_eq!(crate::point::labels_json(&p.labels), r#"{"core":"1","service.name":"api"}"#);
    assert_eq!(n.points()[1].value, Some(Value::Gauge(2.0)));
    // The resource's labels are built once for the scope, not copied into
    // each point.
    assert_eq!(crate::point::labels_json(&n.groups[0].labels), r#"{"service.name":"api"}"#);
    assert_eq!(crate::point::labels_json(&n.groups[0].points[0].labels), r#"{"core":"1"}"#);
    assert!(n.groups[0].points[1].labels.is_empty());
}

#[test]
fn zero_timestamp_means_now() {
    let n = run(r#"{"name":"g","gauge":{"dataPoints":[{"asDouble":1}]}}"#);
    assert_eq!(n.points()[0].time_unix_nano, NOW);
}

#[test]
fn non_finite_and_valueless_points_are_rejected_one_by_one() {
    let n = run(r#"{"name":"g","gauge":{"dataPoints":[
        {"asDouble":"NaN"},{"asDouble":"Infinity"},{},{"asDouble":3}]}}"#);
    assert_eq!(n.points().len(), 1);
    assert_eq!(n.rejected, 3);
    assert!(n.error_message().contains("non-finite value NaN"), "{}", n.error_message());
    assert!(n.error_message().contains("without a value"));
}

#[test]
fn names_longer_than_the_api_allows_are_rejected() {
    let long = "n".repeat(super::MAX_NAME_BYTES + 1);
    let ok = "n".repeat(super::MAX_NAME_BYTES);
    let n = run(&format!(
        r#"{{"name":"{long}","gauge":{{"dataPoints":[{{"asDouble":1}},{{"asDouble":2}}]}}}},
                           {{"name":"{ok}","gauge":{{"dataPoints":[{{"asDouble":3}}]}}}}"#
    ));
    assert_eq!((n.points().len(), n.rejected), (1, 2));
    assert!(n.error_message().contains("name longer than 255 bytes"), "{}", n.error_message());
    assert!(n.error_message().len() < 200, "the message does not repeat the name: {}", n.error_message());
}

#[test]
fn delta_sum_is_a_counter() {
    let n = run(r#"{"name":"req","sum":{"aggregationTemporality":1,"isMonotonic":true,
        "dataPoints":[{"asInt":"5"},{"asInt":"-1"}]}}"#);
    assert_eq!(n.points().len(), 1);
    assert_eq!(n.points()[0].value, Some(Value::Counter(Counter { value: 5.0, monotonic: true, ..Default::default() })));
    assert_eq!(n.rejected, 1, "a monotonic sum cannot decrease");
}

#[test]
fn cumulative_points_are_marked_for_the_rollup_and_missing_temporality_is_rejected() {
    let n = run(
        r#"{"name":"a","sum":{"aggregationTemporality":2,"isMonotonic":true,"dataPoints":[{"asInt":7,"startTimeUnixNano":"1799998000000000000"}]}},
                   {"name":"level","sum":{"aggregationTemporality":2,"isMonotonic":false,"dataPoints":[{"asInt":-3}]}},
                   {"name":"b","histogram":{"dataPoints":[{"count":0}]}}"#,
    );
    assert_eq!(n.rejected, 1);
    assert!(n.error_message().contains("metric b: aggregation temporality is missing"));
    assert_eq!(
        n.points()[0].value,
        Some(Value::Counter(Counter { value: 7.0, monotonic: true, cumulative: true, start_time_unix_nano: 1_799_998_000_000_000_000 }))
    );
    assert_eq!(n.points()[1].value, Some(Value::Gauge(-3.0)), "a cumulative UpDownCounter is a level");
}

#[test]
fn cumulative_histograms_have_layout_only_representatives_and_no_extremes() {
    let n = run(r#"{"name":"lat","histogram":{"aggregationTemporality":2,"dataPoints":[
        {"startTimeUnixNano":"1799998000000000000","count":"6","sum":100,"min":1,"max":50,"explicitBounds":[5,10,20],"bucketCounts":["1","2","0","3"]}]}}"#);
    let points = n.points();
    let d = dist(&points[0]);
    assert!(d.cumulative);
    assert_eq!(d.start_time_unix_nano, 1_799_998_000_000_000_000);
    assert_eq!((d.min, d.max), (None, None));
    assert_eq!(d.values, vec![5.0, 7.5, 20.0]);
}

#[test]
fn summaries_become_quantile_gauges_and_cumulative_count_and_sum() {
    let n = run(r#"{"name":"rpc","unit":"ms","summary":{"dataPoints":[{"startTimeUnixNano":"1799998000000000000","count":"10","sum":55.5,
        "attributes":[{"key":"method","value":{"stringValue":"get"}}],
        "quantileValues":[{"quantile":0.5,"value":4},{"quantile":0.99,"value":9.5}]}]}}"#);
    assert_eq!(n.rejected, 0, "{}", n.error_message());
    let points = n.points();
    let summary: Vec<(&str, String, Option<Value>)> = points
        .iter()
        .map(|p| {
            let q = p.labels.iter().find(|l| l.key == "quantile").map(|l| l.value.clone()).unwrap_or_default();
            (p.metric.as_str(), q, p.value.clone())
        })
        .collect();
    let total = |v: f64| {
        Some(Value::Counter(Counter { value: v, monotonic: true, cumulative: true, start_time_unix_nano: 1_799_998_000_000_000_000 }))
    };
    assert_eq!(
        summary,
        [
            ("rpc.count", String::new(), total(10.0)),
            ("rpc.sum", String::new(), total(55.5)),
            ("rpc", "0.5".to_string(), Some(Value::Gauge(4.0))),
            ("rpc", "0.99".to_string(), Some(Value::Gauge(9.5))),
        ]
    );
    assert!(n.points().iter().all(|p| p.labels.iter().any(|l| l.key == "method")));
    let bad = run(r#"{"name":"s","summary":{"dataPoints":[{"count":1,"quantileValues":[{"quantile":2,"value":1}]}]}}"#);
    assert_eq!((bad.points().len(), bad.rejected), (0, 1));
    // 63 attributes and service.name leave no room for the quantile label:
    // the whole data point is rejected, not only its quantiles.
    let attrs: Vec<String> = (0..63).map(|i| format!(r#"{{"key":"a{i:02}","value":{{"stringValue":"v"}}}}"#)).collect();
    let full = run(&format!(
        r#"{{"name":"s","summary":{{"dataPoints":[{{"count":1,"attributes":[{}],"quantileValues":[{{"quantile":0.5,"value":1}}]}}]}}}}"#,
        attrs.join(",")
    ));
    assert_eq!((full.points().len(), full.rejected), (0, 1));
    assert!(full.error_message().contains("no room for the quantile label"), "{}", full.error_message());
}

#[test]
fn explicit_histogram_buckets_become_weighted_samples() {
    let n = run(r#"{"name":"lat","unit":"ms","histogram":{"aggregationTemporality":1,"dataPoints":[
        {"count":"6","sum":100,"min":1,"max":50,"explicitBounds":[5,10,20],"bucketCounts":["1","2","0","3"]}]}}"#);
    assert_eq!(n.rejected, 0, "{}", n.error_message());
    let points = n.points();
    let d = dist(&points[0]);
    assert_eq!(d.count, 6);
    assert_eq!(d.sum, 100.0);
    assert_eq!(d.values, vec![3.0, 7.5, 35.0]);
    assert_eq!(d.counts, vec![1, 2, 3]);
}

#[test]
fn histogram_edge_cases() {
    let cases = [
        (r#"{"count":3,"explicitBounds":[1],"bucketCounts":[1,1,1]}"#, "3 bucket counts for 1 bounds"),
        (r#"{"count":3,"explicitBounds":[1],"bucketCounts":[1,1]}"#, "not the count 3"),
        (r#"{"count":1,"explicitBounds":[2,1],"bucketCounts":[1,0,0]}"#, "not strictly increasing"),
        (r#"{"count":1,"sum":"NaN","explicitBounds":[1],"bucketCounts":[1,0]}"#, "non-finite sum"),
        (r#"{"count":"18446744073709551615","explicitBounds":[1],"bucketCounts":["18446744073709551615","1"]}"#, "None"),
    ];
    for (dp, reason) in cases {
        let n = run(&format!(r#"{{"name":"h","histogram":{{"aggregationTemporality":1,"dataPoints":[{dp}]}}}}"#));
        assert_eq!((n.points().len(), n.rejected), (0, 1), "{dp}");
        assert!(n.error_message().contains(reason), "{dp}: {}", n.error_message());
    }
    // A histogram with a count but no buckets keeps its count and sum.
    let n = run(r#"{"name":"h","histogram":{"aggregationTemporality":1,"dataPoints":[{"count":4,"sum":8}]}}"#);
    let points = n.points();
    let d = dist(&points[0]);
    assert_eq!((d.count, d.sum, d.values.len()), (4, 8.0, 0));
}

#[test]
fn negative_bucket_counts_do_not_decode() {
    let body = r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"h","histogram":{"aggregationTemporality":1,
        "dataPoints":[{"count":1,"explicitBounds":[1],"bucketCounts":[-1,2]}]}}]}]}]}"#;
    assert!(decode::metrics(body.as_bytes(), Encoding::Json).is_err());
}

#[test]
fn exponential_histogram_uses_geometric_midpoints() {
    let n = run(r#"{"name":"e","exponentialHistogram":{"aggregationTemporality":1,"dataPoints":[
        {"count":6,"sum":1,"scale":0,"zeroCount":1,
         "positive":{"offset":1,"bucketCounts":[2,0,1]},"negative":{"offset":0,"bucketCounts":[2]}}]}}"#);
    assert_eq!(n.rejected, 0, "{}", n.error_message());
    let points = n.points();
    let d = dist(&points[0]);
    let s = 2f64.sqrt();
    assert_eq!(d.counts, vec![1, 2, 1, 2]);
    let expected = [0.0, 2.0 * s, 8.0 * s, -s];
    for (got, want) in d.values.iter().zip(expected) {
        assert!((got - want).abs() < 1e-9, "{got} vs {want}");
    }
}

#[test]
fn exponential_histogram_count_mismatch_and_bad_scale() {
    let n = run(r#"{"name":"e","exponentialHistogram":{"aggregationTemporality":1,"dataPoints":[
        {"count":5,"scale":0,"positive":{"bucketCounts":[1]}},
        {"count":0,"scale":99}]}}"#);
    assert_eq!((n.points().len(), n.rejected), (0, 2));
}

#[test]
fn nameless_and_empty_metrics_are_reported() {
    let n = run(r#"{"gauge":{"dataPoints":[{"asDouble":1},{"asDouble":2}]}},
                   {"name":"nodata"}"#);
    assert_eq!(n.rejected, 3);
    let msg = n.error_message();
    assert!(msg.contains("without a name") && msg.contains("nodata: no data"), "{msg}");
}

#[test]
fn far_future_and_ancient_points_are_rejected() {
    let n = run(&format!(
        r#"{{"name":"g","gauge":{{"dataPoints":[{{"asDouble":1,"timeUnixNano":"{}"}},{{"asDouble":2,"timeUnixNano":"1000"}},{{"asDouble":3,"timeUnixNano":"{}"}}]}}}}"#,
        NOW + 2 * 3600 * 1_000_000_000,
        NOW - 60_000_000_000
    ));
    assert_eq!((n.points().len(), n.rejected), (1, 2));
    assert!(n.error_message().contains("in the future") && n.error_message().contains("retention"), "{}", n.error_message());
}

#[test]
fn scope_attributes_are_labels_and_long_values_are_cut_and_reported() {
    let body = format!(
        r#"{{"resourceMetrics":[{{"scopeMetrics":[{{"scope":{{"name":"lib","attributes":[{{"key":"scope.attr","value":{{"stringValue":"s"}}}}]}},
            "metrics":[{{"name":"g","gauge":{{"dataPoints":[{{"asDouble":1,"attributes":[{{"key":"long","value":{{"stringValue":"{}"}}}}]}}]}}}}]}}]}}]}}"#,
        "x".repeat(5000)
    );
    let n = normalize(decode::metrics(body.as_bytes(), Encoding::Json).unwrap(), NOW);
    assert_eq!((n.points().len(), n.rejected, n.truncated), (1, 0, 1));
    let points = n.points();
    let keys: Vec<&str> = points[0].labels.iter().map(|l| l.key.as_str()).collect();
    assert_eq!(keys, ["long", "scope.attr"]);
    assert!(n.error_message().contains("1 label values longer than 1024 bytes were cut"));
}

#[test]
fn empty_request_is_empty() {
    let n = normalize(Default::default(), NOW);
    assert_eq!((n.points().len(), n.rejected), (0, 0));
}
