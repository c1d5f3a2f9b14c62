//! Retention: each run deletes at most `MAX_DELETES_PER_RUN` expired rows
//! per resolution and ledger table, oldest first, until none is left, and
//! keeps everything within its resolution's retention (wrangler.toml: 1m for
//! 2 days, 1h for 90 days, 1d for 730 days; batch ids for 7 days).

use e2e::*;
use std::time::Duration;

const EXPIRED_MINUTES: u64 = 120;

fn count(sql: &str) -> anyhow::Result<u64> {
    Ok(d1(sql)?.first().and_then(|r| r["n"].as_f64()).unwrap_or(f64::NAN) as u64)
}

#[test]
fn expired_rows_are_deleted_in_bounded_steps_and_the_rest_is_kept() -> anyhow::Result<()> {
    let stack = stack();
    let metric = unique("retention");
    let now_s = now_nanos() / 1_000_000_000;
    let minute = now_s - now_s % 60;
    let hour_10_days_ago = (now_s - 10 * 86_400) / 3600 * 3600;
    let day_3_years_ago = (now_s - 3 * 365 * 86_400) / 86_400 * 86_400;
    let old_key = format!("{}0000000001000-{metric}.pb.gz", proto::archive::KEY_PREFIX);
    let recent_key = proto::archive::key((now_s - 86_400) * 1000, &[&metric]);
    let columns = "(series_id, resolution, bucket_start, count, sum, min, max, last, last_time_ms, samples, version)";
    let series = format!("(SELECT id FROM series WHERE tenant = 'dev' AND metric = '{metric}')");
    d1(&format!(
        "INSERT INTO series (tenant, metric, prom_name, labels, kind, unit) VALUES ('dev', '{metric}', 'retention', '{{}}', 'gauge', 'ms');
         INSERT INTO aggregates {columns}
           WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {last})
           SELECT {series}, 60, i * 60, 1, 1, 1, 1, 1, 0, NULL, 1 FROM n;
         INSERT INTO aggregates {columns} VALUES
           ({series}, 60, {minute}, 1, 1, 1, 1, 1, 0, NULL, 1),
           ({series}, 60, {prev}, 1, 1, 1, 1, 1, 0, NULL, 1),
           ({series}, 3600, {hour_10_days_ago}, 1, 1, 1, 1, 1, 0, NULL, 1),
           ({series}, 86400, {day_3_years_ago}, 1, 1, 1, 1, 1, 0, NULL, 1);
         INSERT INTO processed_archives (key, points, processed_ms) VALUES ('{old_key}', 0, 1000), ('{recent_key}', 0, 1000);
         INSERT INTO processed_batches (batch_id, archive_key)
           WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {last})
           SELECT '{metric}-' || i, '{old_key}' FROM n;",
        last = EXPIRED_MINUTES - 1,
        prev = minute - 60,
    ))?;
    // Ledger rows go only once the listing cursor is past them; an archive an
    // hour old (past the cursor's grace period) makes sure there is one.
    put_archive((now_s - 3600) * 1000, &metric, vec![gauge_batch(&metric, &format!("{metric}.live"), &[(now_s - 3600, 1.0)])])?;

    let rows = |resolution: u64, before: u64| {
        count(&format!(
            "SELECT COUNT(*) AS n FROM aggregates WHERE series_id = {series} AND resolution = {resolution} AND bucket_start < {before}"
        ))
    };
    let batches = || count(&format!("SELECT COUNT(*) AS n FROM processed_batches WHERE archive_key = '{old_key}'"));
    let archive = |key: &str| count(&format!("SELECT COUNT(*) AS n FROM processed_archives WHERE key = '{key}'"));

    run_rollup(&stack)?;
    // One step: MAX_DELETES_PER_RUN of the expired minutes, the expired day.
    assert_eq!(rows(60, EXPIRED_MINUTES * 60)?, EXPIRED_MINUTES - MAX_DELETES_PER_RUN);
    assert_eq!(rows(86_400, u64::MAX / 2)?, 0, "the day bucket three years old is gone");
    let last = last_run(&stack)?;
    assert_eq!(last["expired"]["aggregates"], MAX_DELETES_PER_RUN + 1, "{last}");
    assert_eq!(last["expired"]["more"], true, "{last}");
    assert!(batches()? >= EXPIRED_MINUTES - MAX_DELETES_PER_RUN, "at most one step of batch ids per run");

    rollup_until(&stack, Duration::from_secs(120), || {
        Ok((rows(60, EXPIRED_MINUTES * 60)? == 0 && batches()? == 0 && archive(&old_key)? == 0).then_some(()))
    })?;
    assert_eq!(rows(60, u64::MAX / 2)?, 2, "this minute and the one before are kept");
    assert_eq!(rows(3600, u64::MAX / 2)?, 1, "an hour bucket ten days old is kept");
    assert_eq!(archive(&recent_key)?, 1, "a ledger entry within the dedup window is kept");
    Ok(())
}
