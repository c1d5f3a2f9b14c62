//! The cardinality guard: a metric with more series than the limit keeps the
//! first ones and folds the points of the rest into its overflow series, so
//! every point still counts.

use e2e::*;
use serde_json::json;
use std::time::Duration;

#[test]
fn series_beyond_the_limit_fold_into_the_overflow_series() -> anyhow::Result<()> {
    let stack = stack();
    let metric = unique("cardinality.gauge");
    let series = MAX_SERIES_PER_METRIC as usize + 30;
    let t0 = (now_nanos() / 60_000_000_000 - 1) * 60_000_000_000;
    let points: Vec<_> = (0..series)
        .map(|i| {
            json!({ "timeUnixNano": t0.to_string(), "asDouble": i as f64,
                          "attributes": [{ "key": "i", "value": { "stringValue": format!("{i:03}") } }] })
        })
        .collect();
    let body = json!({ "resourceMetrics": [{ "scopeMetrics": [{ "metrics": [
        { "name": metric, "gauge": { "dataPoints": points } } ] }] }] });
    let r = post_metrics_json(&stack, &body.to_string())?;
    assert_eq!((r.status, r.text()), (200, "{}".to_string()));

    let counted = format!(
        "SELECT s.labels AS labels, SUM(a.count) AS n FROM aggregates a JOIN series s ON s.id = a.series_id \
         WHERE s.tenant = 'dev' AND s.metric = '{metric}' AND a.resolution = 3600 GROUP BY s.labels"
    );
    let rows = rollup_until(&stack, Duration::from_secs(60), || {
        let rows = d1(&counted)?;
        let total: f64 = rows.iter().map(|r| r["n"].as_f64().unwrap_or(0.0)).sum();
        Ok((total >= series as f64).then_some(rows))
    })?;
    let total: f64 = rows.iter().map(|r| r["n"].as_f64().unwrap_or(0.0)).sum();
    assert_eq!(total, series as f64, "every point counted once");
    assert_eq!(rows.len(), MAX_SERIES_PER_METRIC as usize + 1, "the limit plus the overflow series");
    let overflow = rows.iter().find(|r| r["labels"] == r#"{"otel.metric.overflow":"true"}"#).expect("an overflow series");
    assert_eq!(overflow["n"], 30.0);

    // The overflow series reads back like any other: it holds values 100..=129.
    let at = (t0 / 1_000_000_000 + 120) as f64;
    let name = metric.replace('.', "_");
    for (phi, want) in [("0", "100"), ("1", "129")] {
        let q = format!("{name}{{otel_metric_overflow=\"true\",quantile=\"{phi}\"}}");
        let r = instant_query(&stack, &q, at)?;
        assert_eq!(r.json()["data"]["result"][0]["value"][1], want, "{}", r.text());
    }
    Ok(())
}
