//! The ledger per commit (migration 0009): a run reads all its archives
//! into one transaction, which records them and their batch ids in a few
//! rows; and what the per-archive ledger recorded before the upgrade is
//! still honoured.

use e2e::*;
use std::time::Duration;

fn count(sql: &str) -> anyhow::Result<u64> {
    Ok(d1(sql)?.first().and_then(|r| r["n"].as_f64()).unwrap_or(f64::NAN) as u64)
}

/// Takes the rollup's run lease for `holder` once it is free, as a run
/// does (`rollup/src/store/lease.rs`), waiting up to `wait` for a run in
/// progress to give it back.
fn hold_lease(holder: &str, wait: Duration) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        let now = now_nanos() / 1_000_000;
        let got = d1(&format!(
            "INSERT INTO rollup_lease (name, holder, until_ms) VALUES ('run', '{holder}', {until}) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms \
             WHERE rollup_lease.until_ms < {now} RETURNING holder",
            until = now + 120_000
        ))?;
        if got.iter().any(|r| r["holder"] == holder) {
            return Ok(());
        }
        anyhow::ensure!(std::time::Instant::now() < deadline, "the run lease stayed taken for {wait:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn a_run_commits_all_its_archives_in_one_transaction() -> anyhow::Result<()> {
    let stack = stack();
    let metric = unique("ledger.one.commit");
    let now_s = now_nanos() / 1_000_000_000;
    // Hold the run lease while the six archives are put, so that a run the
    // other test in this file triggers cannot list only some of them.
    hold_lease("e2e-ledger-test", Duration::from_secs(60))?;
    let mut keys = Vec::new();
    for i in 0..6u64 {
        let points: Vec<(u64, f64)> = (0..10).map(|j| (now_s - 60 - j, (i * 10 + j) as f64)).collect();
        let batch = gauge_batch(&format!("{metric}-{i}"), &metric, &points);
        keys.push(put_archive(now_nanos() / 1_000_000, &format!("{metric}-{i}"), vec![batch])?);
    }
    d1("DELETE FROM rollup_lease WHERE holder = 'e2e-ledger-test'")?;
    rollup_until(&stack, Duration::from_secs(60), || {
        let applied = applied_archive_keys(now_s * 1000 - 60_000)?;
        Ok(keys.iter().all(|k| applied.contains(k)).then_some(()))
    })?;
    assert_eq!(counted(&metric, 3600)?, 60.0, "every point once");
    let list = keys.iter().map(|k| format!("'{k}'")).collect::<Vec<_>>().join(",");
    let commits =
        count(&format!("SELECT COUNT(DISTINCT a.commit_id) AS n FROM ledger_archives a, json_each(a.keys) j WHERE j.value IN ({list})"))?;
    assert_eq!(commits, 1, "six archives read by one run are one commit");
    // Their six batch ids sit in one row (one commit, one hour of data) or
    // two (the points straddle an hour).
    let rows = count(&format!(
        "SELECT COUNT(DISTINCT b.data_hour) AS n FROM ledger_batches b, json_each(b.ids) j WHERE j.value LIKE '{metric}-%'"
    ))?;
    assert!((1..=2).contains(&rows), "{rows} ledger rows of batches");
    let last = last_run(&stack)?;
    assert!(last["commits"].as_u64().is_some(), "the report counts commits: {last}");
    Ok(())
}

#[test]
fn ledger_rows_from_before_the_upgrade_are_still_honoured() -> anyhow::Result<()> {
    let stack = stack();
    let metric = unique("ledger.upgrade");
    let now_s = now_nanos() / 1_000_000_000;
    let at = |v: f64| vec![(now_s - 60, v)];
    // An archive the old ledger lists as applied, and a batch id it lists.
    let old_archive = proto::archive::key(now_nanos() / 1_000_000, &[&metric, "old"]);
    let old_batch = format!("{metric}-old-batch");
    d1(&format!(
        "INSERT INTO processed_archives (key, points, processed_ms) VALUES ('{old_archive}', 1, 1000);
         INSERT INTO processed_batches (batch_id, archive_key) VALUES ('{old_batch}', 'archives/0000000001000-old.pb.gz');"
    ))?;
    use prost::Message;
    let applied_before = gauge_batch("applied-before", &metric, &at(100.0)).encode_to_vec();
    put_object(&old_archive, &proto::archive::encode(&[&applied_before]))?;
    let mixed = put_archive(
        now_nanos() / 1_000_000,
        &format!("{metric}-new"),
        vec![gauge_batch(&old_batch, &metric, &at(7.0)), gauge_batch(&format!("{metric}-fresh"), &metric, &at(3.0))],
    )?;
    rollup_until(&stack, Duration::from_secs(60), || Ok(applied_archive_keys(now_s * 1000 - 60_000)?.contains(&mixed).then_some(())))?;
    run_rollup(&stack)?;
    let sum = d1(&format!(
        "SELECT SUM(a.count) AS n, SUM(a.sum) AS s FROM aggregates a JOIN series s ON s.id = a.series_id \
         WHERE s.metric = '{metric}' AND a.resolution = 3600"
    ))?;
    assert_eq!(sum[0]["n"].as_f64(), Some(1.0), "only the fresh batch counts: {sum:?}");
    assert_eq!(sum[0]["s"].as_f64(), Some(3.0), "{sum:?}");
    Ok(())
}
