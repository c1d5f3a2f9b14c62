//! Series lifecycle: the cardinality guard counts active series only (those
//! with a minute bucket within the minute retention, 2 days), so label
//! values that churn do not fill a metric's limit for good; the catalog
//! rows of series with no bucket left are deleted, and so are cumulative
//! states older than the longest retention, a bounded slice a run.

use e2e::*;
use serde_json::json;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The tests of this file run one at a time: the second counts what the
/// runs it triggers report, which a run triggered by the first would hide.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn gauge_points(t_ns: u64, pods: impl Iterator<Item = String>) -> serde_json::Value {
    let points: Vec<_> = pods
        .map(|pod| json!({ "timeUnixNano": t_ns.to_string(), "asDouble": 1.0, "attributes": [{ "key": "pod", "value": { "stringValue": pod } }] }))
        .collect();
    json!(points)
}

fn send(stack: &Stack, metric: &str, points: serde_json::Value) -> anyhow::Result<()> {
    let body = json!({ "resourceMetrics": [{ "scopeMetrics": [{ "metrics": [{ "name": metric, "gauge": { "dataPoints": points } }] }] }] });
    let r = post_metrics_json(stack, &body.to_string())?;
    anyhow::ensure!((r.status, r.text()) == (200, "{}".to_string()), "ingest answered {}: {}", r.status, r.text());
    Ok(())
}

/// Points of the last day per series label JSON of `metric` in the dev
/// tenant, from its hour rows (minutes are in head and block blobs).
fn minute_counts(metric: &str) -> anyhow::Result<Vec<(String, f64)>> {
    let sql = format!(
        "SELECT s.labels AS labels, SUM(a.count) AS n FROM aggregates a JOIN series s ON s.id = a.series_id \
         WHERE s.tenant = 'dev' AND s.metric = '{metric}' AND a.resolution = 3600 \
         AND a.bucket_start >= CAST(strftime('%s', 'now') AS INTEGER) - 86400 GROUP BY s.labels ORDER BY s.labels"
    );
    Ok(d1(&sql)?.iter().map(|r| (r["labels"].as_str().unwrap_or_default().to_owned(), r["n"].as_f64().unwrap_or(0.0))).collect())
}

#[test]
fn series_not_seen_for_the_minute_retention_leave_room_for_new_ones() -> anyhow::Result<()> {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let stack = stack();
    let metric = unique("churn.gauge");
    let limit = MAX_SERIES_PER_METRIC as usize;
    let now_s = now_nanos() / 1_000_000_000;
    // A full metric of pods last seen three days ago: their hour buckets are
    // kept (90 days), their minutes are not.
    let hour = (now_s - 3 * 86_400) / 3600 * 3600;
    d1(&format!(
        "INSERT INTO series (tenant, metric, prom_name, labels, kind, unit)
           WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {last})
           SELECT 'dev', '{metric}', '{prom}', json_object('pod', printf('old-%03d', i)), 'gauge', '' FROM n;
         INSERT INTO aggregates (series_id, resolution, bucket_start, count, sum, min, max, last, last_time_ms, samples, version)
           SELECT id, 3600, {hour}, 1, 1, 1, 1, 1, {hour}000, NULL, 1 FROM series WHERE tenant = 'dev' AND metric = '{metric}';",
        last = limit - 1,
        prom = metric.replace('.', "_"),
    ))?;

    // As many new pods as the limit: every one is admitted.
    let minute_ns = (now_s / 60 - 1) * 60 * 1_000_000_000;
    send(&stack, &metric, gauge_points(minute_ns, (0..limit).map(|i| format!("new-{i:03}"))))?;
    let counts = rollup_until(&stack, Duration::from_secs(60), || {
        let c = minute_counts(&metric)?;
        Ok((c.iter().map(|(_, n)| n).sum::<f64>() >= limit as f64).then_some(c))
    })?;
    assert_eq!(counts.len(), limit, "each new pod its own series, none folded: {counts:?}");
    assert!(counts.iter().all(|(labels, n)| labels.contains("new-") && *n == 1.0), "{counts:?}");

    // An old pod that comes back now counts again, and the metric is full of
    // active series: it is folded into the overflow series.
    send(&stack, &metric, gauge_points(minute_ns, std::iter::once("old-007".to_string())))?;
    let counts = rollup_until(&stack, Duration::from_secs(60), || {
        let c = minute_counts(&metric)?;
        Ok((c.iter().map(|(_, n)| n).sum::<f64>() > limit as f64).then_some(c))
    })?;
    let overflow: Vec<_> = counts.iter().filter(|(labels, _)| labels.contains("otel.metric.overflow")).collect();
    assert_eq!(overflow.len(), 1, "{counts:?}");
    assert_eq!(overflow[0].1, 1.0);
    assert!(!counts.iter().any(|(labels, _)| labels.contains("old-")), "{counts:?}");
    Ok(())
}

#[test]
fn series_with_no_bucket_left_are_deleted_and_the_others_kept() -> anyhow::Result<()> {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let stack = stack();
    let metric = unique("lifecycle.gauge");
    let now_s = now_nanos() / 1_000_000_000;
    let day_3_years_ago = (now_s - 3 * 365 * 86_400) / 86_400 * 86_400;
    let hour_10_days_ago = (now_s - 10 * 86_400) / 3600 * 3600;
    let series =
        |pod: &str| format!("(SELECT id FROM series WHERE tenant = 'dev' AND metric = '{metric}' AND labels = '{{\"pod\":\"{pod}\"}}')");
    let columns = "(series_id, resolution, bucket_start, count, sum, min, max, last, last_time_ms, samples, version)";
    d1(&format!(
        "INSERT INTO series (tenant, metric, prom_name, labels, kind, unit) VALUES
           ('dev', '{metric}', 'lifecycle', '{{\"pod\":\"expired\"}}', 'gauge', ''),
           ('dev', '{metric}', 'lifecycle', '{{\"pod\":\"empty\"}}', 'gauge', ''),
           ('dev', '{metric}', 'lifecycle', '{{\"pod\":\"kept\"}}', 'gauge', '');
         INSERT INTO aggregates {columns} VALUES
           ({expired}, 86400, {day_3_years_ago}, 1, 1, 1, 1, 1, 0, NULL, 1),
           ({kept}, 3600, {hour_10_days_ago}, 1, 1, 1, 1, 1, 0, NULL, 1);",
        expired = series("expired"),
        kept = series("kept"),
    ))?;
    let pods = || -> anyhow::Result<Vec<String>> {
        let rows = d1(&format!("SELECT labels FROM series WHERE tenant = 'dev' AND metric = '{metric}' ORDER BY labels"))?;
        Ok(rows.iter().filter_map(|r| r["labels"].as_str().map(str::to_owned)).collect())
    };
    // Retention deletes the expired bucket; the sweep, a slice of the
    // catalog a run, then reaches both series that have none.
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut swept = 0;
    loop {
        run_rollup(&stack)?;
        swept += last_run(&stack)?["expired"]["series"].as_u64().unwrap_or(0);
        if pods()? == [r#"{"pod":"kept"}"#] {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "series left after 180 s: {:?}", pods()?);
    }
    assert!(swept >= 2, "the run reports count the deleted series: {swept}");
    // A deleted series that sends again is created afresh and counted.
    let minute_ns = (now_s / 60 - 1) * 60 * 1_000_000_000;
    send(&stack, &metric, gauge_points(minute_ns, std::iter::once("empty".to_string())))?;
    rollup_until(&stack, Duration::from_secs(60), || {
        Ok((minute_counts(&metric)? == [(r#"{"pod":"empty"}"#.to_string(), 1.0)]).then_some(()))
    })?;
    Ok(())
}

#[test]
fn cumulative_states_go_once_every_bucket_they_counted_into_has_expired() -> anyhow::Result<()> {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let stack = stack();
    let metric = unique("lifecycle.cumulative");
    let now_ms = now_nanos() / 1_000_000;
    // Keys that sort anywhere among the real hashes; no series has them.
    let old = format!("{:032x}", proto::hash::hash128(&[metric.as_bytes(), b"old"]));
    let recent = format!("{:032x}", proto::hash::hash128(&[metric.as_bytes(), b"recent"]));
    let three_years_ms = 3 * 365 * 86_400_000;
    d1(&format!(
        "INSERT INTO cumulative_state (series_hash, point, version, seen_ms) VALUES
           ('{old}', x'00', 1, {}), ('{recent}', x'00', 1, {});",
        now_ms - three_years_ms,
        now_ms - 86_400_000,
    ))?;
    let states = || -> anyhow::Result<Vec<String>> {
        let rows = d1(&format!("SELECT series_hash FROM cumulative_state WHERE series_hash IN ('{old}', '{recent}')"))?;
        Ok(rows.iter().filter_map(|r| r["series_hash"].as_str().map(str::to_owned)).collect())
    };
    let deadline = Instant::now() + Duration::from_secs(180);
    while states()? != [recent.clone()] {
        anyhow::ensure!(Instant::now() < deadline, "states left after 180 s: {:?}", states()?);
        run_rollup(&stack)?;
    }
    // A cumulative point writes its state with the time it was taken.
    let t_ns = (now_ms / 60_000 - 1) * 60_000_000_000;
    let point = json!({ "startTimeUnixNano": (t_ns - 60_000_000_000).to_string(), "timeUnixNano": t_ns.to_string(), "asDouble": 5.0 });
    let body = json!({ "resourceMetrics": [{ "scopeMetrics": [{ "metrics": [{ "name": metric,
        "sum": { "aggregationTemporality": 2, "isMonotonic": true, "dataPoints": [point] } }] }] }] });
    let r = post_metrics_json(&stack, &body.to_string())?;
    anyhow::ensure!(r.status == 200, "ingest answered {}: {}", r.status, r.text());
    rollup_until(&stack, Duration::from_secs(60), || Ok((counted(&metric, 3600)? == 1.0).then_some(())))?;
    let seen = d1("SELECT MAX(seen_ms) AS newest FROM cumulative_state")?;
    let unset = d1("SELECT COUNT(*) AS n FROM cumulative_state WHERE seen_ms IS NULL")?;
    assert_eq!(unset[0]["n"], 0.0, "every state has its time");
    assert!(seen[0]["newest"].as_f64().unwrap_or(0.0) >= (t_ns / 1_000_000) as f64, "{seen:?}");
    Ok(())
}
