//! Bounded work: a backlog larger than one run's budget is applied over
//! several runs, each stopping at its budget, with every point counted once.
//! The test stack allows `MAX_POINTS_PER_RUN` points per run.

use e2e::*;
use std::time::Duration;

const ARCHIVES: u64 = 5;
const POINTS_PER_ARCHIVE: u64 = 1500;

// The backlog must exceed what two runs take.
const _: () = assert!(ARCHIVES * POINTS_PER_ARCHIVE > 2 * MAX_POINTS_PER_RUN);

#[test]
fn a_backlog_beyond_one_runs_budget_drains_over_several_runs() -> anyhow::Result<()> {
    let stack = stack();
    let metric = unique("backlog");
    let now_ms = now_nanos() / 1_000_000;
    let t0 = now_ms / 1000 - 120;
    let mut keys = Vec::new();
    for a in 0..ARCHIVES {
        let points: Vec<(u64, f64)> = (0..POINTS_PER_ARCHIVE).map(|i| (t0 + i % 60, (a * POINTS_PER_ARCHIVE + i) as f64)).collect();
        let batch = gauge_batch(&format!("{metric}-{a}"), &metric, &points);
        keys.push(put_archive(now_ms - 60_000 + a, &format!("{metric}-{a}"), vec![batch])?);
    }

    run_rollup(&stack)?;
    let applied = applied_archive_keys(now_ms - 61_000)?;
    let mine = keys.iter().filter(|k| applied.contains(k)).count();
    assert!(mine < ARCHIVES as usize, "one run stopped at its budget, yet applied all {mine} archives");
    let last = last_run(&stack)?;
    assert_eq!(last["stopped_by"], "points", "{last}");
    assert!(last["backlog"].as_u64().unwrap_or(0) >= 1, "{last}");
    assert!(last["lag_ms"].as_u64().unwrap_or(0) >= 60_000, "the lag is the oldest left archive's age: {last}");
    // A run stops before the archive that would start beyond the budget,
    // so it holds at most the budget plus one archive.
    assert!(last["points"].as_u64().unwrap_or(u64::MAX) < MAX_POINTS_PER_RUN + POINTS_PER_ARCHIVE, "{last}");

    let runs = rollup_until(&stack, Duration::from_secs(120), || {
        let applied = applied_archive_keys(now_ms - 61_000)?;
        Ok(keys.iter().all(|k| applied.contains(k)).then_some(()))
    });
    runs?;
    assert_eq!(counted(&metric, 3600)?, (ARCHIVES * POINTS_PER_ARCHIVE) as f64, "every point counted once");
    let drained = rollup_until(&stack, Duration::from_secs(60), || {
        let last = last_run(&stack)?;
        Ok((last["backlog"] == 0).then_some(last))
    })?;
    assert_eq!(drained["lag_ms"], 0, "{drained}");
    assert!(drained["stopped_by"].is_null(), "{drained}");
    Ok(())
}
