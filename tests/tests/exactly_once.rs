//! Exactly once in the rollup: an archive delivered twice (the queue
//! redelivering a batch), an exporter retrying the same body, extra cron
//! runs and two runs at once change no count.

use e2e::*;
use serde_json::json;
use std::time::Duration;

const POINTS: usize = 40;

#[test]
fn duplicates_retries_and_concurrent_runs_count_once() -> anyhow::Result<()> {
    let stack = stack();
    let metric = unique("exactly.once");
    let since_ms = now_nanos() / 1_000_000 - 1;
    let t0 = (now_nanos() / 60_000_000_000 - 1) * 60_000_000_000;
    let points: Vec<_> = (0..POINTS)
        .map(|i| {
            json!({ "timeUnixNano": t0.to_string(), "asDouble": i as f64,
                          "attributes": [{ "key": "i", "value": { "stringValue": format!("{}", i % 4) } }] })
        })
        .collect();
    let body = json!({ "resourceMetrics": [{ "scopeMetrics": [{ "metrics": [
        { "name": metric, "gauge": { "dataPoints": points } } ] }] }] })
    .to_string();
    let send = || -> anyhow::Result<()> {
        let r = post_metrics_json(&stack, &body)?;
        anyhow::ensure!(r.status == 200, "ingest answered {}: {}", r.status, r.text());
        Ok(())
    };
    send()?;
    let n = rollup_until(&stack, Duration::from_secs(60), || {
        let n = counted(&metric, 3600)?;
        Ok((n >= POINTS as f64).then_some(n))
    })?;
    assert_eq!(n, POINTS as f64);

    // The archive that held the batch, written again under a new key: what a
    // second delivery of the same queue messages produces.
    let mut original = None;
    for key in applied_archive_keys(since_ms)? {
        let archive = read_archive(&key)?;
        if archive.batches.iter().any(|b| b.points.iter().any(|p| p.metric == metric)) {
            original = Some(key);
            break;
        }
    }
    let original = original.expect("the archive with the metric's batch");
    let copy = proto::archive::key(now_nanos() / 1_000_000, &["e2e-duplicate", &metric]);
    put_object(&copy, &get_object(&original)?)?;
    // And the exporter retrying the same body.
    send()?;

    // Two runs at once, then more, until the copy has been applied too.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| run_rollup(&stack).is_ok());
        let b = s.spawn(|| run_rollup(&stack).is_ok());
        (a.join().unwrap_or(false), b.join().unwrap_or(false))
    });
    assert!(a || b, "at least one of two concurrent runs completes");
    rollup_until(&stack, Duration::from_secs(60), || Ok(applied_archive_keys(since_ms)?.contains(&copy).then_some(())))?;
    // The retried body's archive is applied too once the ledger has moved on.
    rollup_until(&stack, Duration::from_secs(60), || {
        let applied = applied_archive_keys(since_ms)?;
        let mut with_metric = 0;
        for key in &applied {
            if key != &copy && read_archive(key)?.batches.iter().any(|b| b.points.iter().any(|p| p.metric == metric)) {
                with_metric += 1;
            }
        }
        Ok((with_metric >= 2).then_some(()))
    })?;
    run_rollup(&stack)?;
    assert_eq!(counted(&metric, 3600)?, POINTS as f64, "every point still counted once");
    // The commit that applied the original archive recorded its batch ids.
    let batches = d1(&format!(
        "SELECT COUNT(*) AS n FROM ledger_archives a, json_each(a.keys) k, ledger_batches b \
         WHERE k.value = '{original}' AND b.commit_id = a.commit_id AND json_array_length(b.ids) >= 1"
    ))?;
    assert!(batches[0]["n"].as_f64().unwrap_or(0.0) >= 1.0, "the original archive's batches are recorded");
    Ok(())
}
