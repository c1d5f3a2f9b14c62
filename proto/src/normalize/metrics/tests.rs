use super::*;
use crate::decode::{self, Encoding};

const NOW: u64 = 1_800_000_000_000_000_000;

fn run(metrics_json: &str) -> Normalized {
    let body = format!(
        r#"{{"resourceMetrics":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"api"}}}}]}},
            "scopeMetrics":[{{"metrics":[{metrics_json}]}}]}}]}}"#
    );
    let req = decode::metrics(body.as_bytes(), Encoding::Json).unwrap();
    normalize(&req, NOW)
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
        {"timeUnixNano":"1700000000000000000","asDouble":0.5,"attributes":[{"key":"core","value":{"intValue":"1"}}]},
        {"timeUnixNano":"1700000000000000000","asInt":"2"}]}}"#);
    assert_eq!(n.rejected, 0);
    assert_eq!(n.points.len(), 2);
    let p = &n.points[0];
    assert_eq!(p.metric, "cpu");
    assert_eq!(p.unit, "1");
    assert_eq!(p.time_unix_nano, 1_700_000_000_000_000_000);
    assert_eq!(p.value, Some(Value::Gauge(0.5)));
    assert_eq!(crate::point::labels_json(&p.labels), r#"{"core":"1","service.name":"api"}"#);
    assert_eq!(n.points[1].value, Some(Value::Gauge(2.0)));
}

#[test]
fn zero_timestamp_means_now() {
    let n = run(r#"{"name":"g","gauge":{"dataPoints":[{"asDouble":1}]}}"#);
    assert_eq!(n.points[0].time_unix_nano, NOW);
}

#[test]
fn non_finite_and_valueless_points_are_rejected_one_by_one() {
    let n = run(r#"{"name":"g","gauge":{"dataPoints":[
        {"asDouble":"NaN"},{"asDouble":"Infinity"},{},{"asDouble":3}]}}"#);
    assert_eq!(n.points.len(), 1);
    assert_eq!(n.rejected, 3);
    assert!(n.error_message().contains("non-finite value NaN"), "{}", n.error_message());
    assert!(n.error_message().contains("without a value"));
}

#[test]
fn delta_sum_is_a_counter() {
    let n = run(r#"{"name":"req","sum":{"aggregationTemporality":1,"isMonotonic":true,
        "dataPoints":[{"asInt":"5"},{"asInt":"-1"}]}}"#);
    assert_eq!(n.points.len(), 1);
    assert_eq!(n.points[0].value, Some(Value::Counter(Counter { delta: 5.0, monotonic: true })));
    assert_eq!(n.rejected, 1, "a monotonic sum cannot decrease");
}

#[test]
fn cumulative_and_missing_temporality_are_rejected_with_reasons() {
    let n = run(r#"{"name":"a","sum":{"aggregationTemporality":2,"dataPoints":[{"asInt":1},{"asInt":2}]}},
                   {"name":"b","histogram":{"dataPoints":[{"count":0}]}}"#);
    assert_eq!(n.points.len(), 0);
    assert_eq!(n.rejected, 3);
    assert!(n.error_message().contains("metric a: cumulative"));
    assert!(n.error_message().contains("metric b: aggregation temporality is missing"));
}

#[test]
fn explicit_histogram_buckets_become_weighted_samples() {
    let n = run(r#"{"name":"lat","unit":"ms","histogram":{"aggregationTemporality":1,"dataPoints":[
        {"count":"6","sum":100,"min":1,"max":50,"explicitBounds":[5,10,20],"bucketCounts":["1","2","0","3"]}]}}"#);
    assert_eq!(n.rejected, 0, "{}", n.error_message());
    let d = dist(&n.points[0]);
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
        assert_eq!((n.points.len(), n.rejected), (0, 1), "{dp}");
        assert!(n.error_message().contains(reason), "{dp}: {}", n.error_message());
    }
    // A histogram with a count but no buckets keeps its count and sum.
    let n = run(r#"{"name":"h","histogram":{"aggregationTemporality":1,"dataPoints":[{"count":4,"sum":8}]}}"#);
    let d = dist(&n.points[0]);
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
    let d = dist(&n.points[0]);
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
    assert_eq!((n.points.len(), n.rejected), (0, 2));
}

#[test]
fn summaries_and_nameless_metrics_are_reported() {
    let n = run(r#"{"name":"s","summary":{"dataPoints":[{"count":1},{"count":2}]}},
                   {"gauge":{"dataPoints":[{"asDouble":1}]}},
                   {"name":"nodata"}"#);
    assert_eq!(n.rejected, 4);
    let msg = n.error_message();
    assert!(msg.contains("Summary") && msg.contains("without a name") && msg.contains("nodata: no data"), "{msg}");
}

#[test]
fn empty_request_is_empty() {
    let n = normalize(&Default::default(), NOW);
    assert_eq!((n.points.len(), n.rejected), (0, 0));
}
