//! The minute level of storage v2 (migration 0011, docs/STORAGE.md): a
//! commit writes its minutes to head rows; a closed hour's head rows are
//! compacted into one block per series; dashboard-api reads blocks, head
//! rows and the minute rows written before the migration as one range.

use e2e::*;
use proto::aggregate::Aggregate;
use proto::point::{Point, Value};
use std::time::Duration;

/// (count, sum) of each minute of `name` in [from, to), as the increase of
/// its `_count` and `_sum` over each minute at a 1-minute step.
fn minutes(stack: &Stack, name: &str, from: u64, to: u64) -> anyhow::Result<Vec<(u64, f64, f64)>> {
    let range = |q: String| -> anyhow::Result<serde_json::Value> {
        let path = format!("/api/v1/query_range?query={}&start={}&end={}&step=60", encode(&q), from + 60, to);
        let r = dashboard_get(stack, &format!("Bearer {DEV_READ_KEY}"), &path)?;
        anyhow::ensure!(r.status == 200, "{path}: {}", r.text());
        Ok(r.json()["data"]["result"][0]["values"].clone())
    };
    let (counts, sums) = (range(format!("increase({name}_count[1m])"))?, range(format!("increase({name}_sum[1m])"))?);
    let number = |v: &serde_json::Value| v.as_str().and_then(|s| s.parse::<f64>().ok()).unwrap_or(f64::NAN);
    let mut out = Vec::new();
    for (c, s) in counts.as_array().into_iter().flatten().zip(sums.as_array().into_iter().flatten()) {
        let n = number(&c[1]);
        if n > 0.0 {
            out.push((c[0].as_u64().unwrap_or(0) - 60, n, number(&s[1])));
        }
    }
    Ok(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn count(sql: &str) -> anyhow::Result<f64> {
    Ok(d1(sql)?.first().and_then(|r| r["n"].as_f64()).unwrap_or(0.0))
}

#[test]
fn minutes_of_compacted_open_and_pre_upgrade_hours_read_as_one_range() -> anyhow::Result<()> {
    let stack = stack();
    let metric = unique("v2.gauge");
    let name = proto::names::prom_name(&metric);
    let now = now_nanos() / 1_000_000_000;
    // A minute of an hour that closed over an hour ago (compacted by the run
    // that applies it) and the last minute (head, not yet compacted).
    let old_hour = now - now % 3600 - 2 * 3600;
    let old = old_hour + 300;
    let recent = now - now % 60 - 60;
    post_gauge(&stack, &metric, "ms", &[(old + 1, 10.0), (recent + 1, 1.0)])?;
    rollup_until(&stack, Duration::from_secs(60), || Ok((counted(&metric, 3600)? == 2.0).then_some(())))?;
    let id = count(&format!("SELECT id AS n FROM series WHERE tenant = 'dev' AND metric = '{metric}'"))?;
    let blocks = format!("SELECT COUNT(*) AS n FROM blocks WHERE hour_start = {old_hour} AND series_id = {id}");
    assert_eq!(count(&blocks)?, 1.0, "the closed hour is one block");
    let open_hour = recent - recent % 3600;
    let head = |hour: u64| format!("SELECT COUNT(*) AS n FROM head WHERE hour_start = {hour} AND tenant = 'dev' AND prom_name = '{name}'");
    assert_eq!(count(&head(old_hour))?, 0.0, "its head rows are gone");
    assert_eq!(count(&head(open_hour))?, 1.0, "the open hour is in the head");

    // Minute rows written before migration 0011: one in the compacted
    // minute, one in the next.
    d1(&format!(
        "INSERT INTO aggregates (series_id, resolution, bucket_start, count, sum, min, max, last, last_time_ms, samples, version) VALUES
           ({id}, 60, {old}, 5, 50, 10, 10, 10, {old}000, NULL, 1),
           ({id}, 60, {next}, 1, 7, 7, 7, 7, {next}000, NULL, 1)",
        next = old + 60
    ))?;
    let want = vec![(old, 6.0, 60.0), (old + 60, 1.0, 7.0), (recent, 1.0, 1.0)];
    assert_eq!(minutes(&stack, &name, old_hour, recent + 60)?, want);

    // Late data into the compacted hour: another block beside the first,
    // which readers merge minute by minute.
    post_gauge(&stack, &metric, "ms", &[(old + 2, 20.0)])?;
    rollup_until(&stack, Duration::from_secs(60), || Ok((counted(&metric, 3600)? == 3.0).then_some(())))?;
    assert_eq!(count(&blocks)?, 2.0);
    let want = vec![(old, 7.0, 80.0), (old + 60, 1.0, 7.0), (recent, 1.0, 1.0)];
    assert_eq!(minutes(&stack, &name, old_hour, recent + 60)?, want);
    Ok(())
}

#[test]
fn head_rows_a_dead_run_left_are_compacted_once_by_the_next() -> anyhow::Result<()> {
    let stack = stack();
    let metric = unique("v2.crash");
    let name = proto::names::prom_name(&metric);
    let now = now_nanos() / 1_000_000_000;
    let hour = now - now % 3600 - 3 * 3600;
    post_gauge(&stack, &metric, "ms", &[(hour + 60, 1.0)])?;
    rollup_until(&stack, Duration::from_secs(60), || Ok((counted(&metric, 3600)? == 1.0).then_some(())))?;
    let id = count(&format!("SELECT id AS n FROM series WHERE tenant = 'dev' AND metric = '{metric}'"))? as i64;

    // What a run leaves that died after its commit and before compacting:
    // head rows of a closed hour (two commits' worth).
    let minute = |start: u64, v: f64| {
        let mut a = Aggregate::empty(true, "ms");
        a.add_point(&Point { time_unix_nano: (start + 5) * 1_000_000_000, value: Some(Value::Gauge(v)), ..Default::default() });
        a
    };
    let (a, b) = (minute(hour + 60, 2.0), minute(hour + 120, 3.0));
    let mut rows = Vec::new();
    for (commit, m) in [("dead-1", vec![(hour as i64 + 60, &a)]), ("dead-2", vec![(hour as i64 + 60, &a), (hour as i64 + 120, &b)])] {
        let body = proto::aggregate::head::encode(hour as i64, &[(id, m)])?.remove(0);
        rows.push(format!("({hour}, 'dev', '{name}', '{commit}', 0, X'{}')", hex(&body)));
    }
    d1(&format!("INSERT INTO head (hour_start, tenant, prom_name, commit_id, part, body) VALUES {}", rows.join(", ")))?;
    let head = format!("SELECT COUNT(*) AS n FROM head WHERE hour_start = {hour} AND prom_name = '{name}'");
    assert_eq!(count(&head)?, 2.0);
    // Read before compaction (from the head) and after it (from blocks),
    // every minute counts once; later runs change nothing.
    let want = vec![(hour + 60, 3.0, 5.0), (hour + 120, 1.0, 3.0)];
    assert_eq!(minutes(&stack, &name, hour, hour + 3600)?, want);
    run_rollup(&stack)?;
    assert_eq!(count(&head)?, 0.0, "compacted by the next run");
    assert_eq!(minutes(&stack, &name, hour, hour + 3600)?, want);
    run_rollup(&stack)?;
    assert_eq!(minutes(&stack, &name, hour, hour + 3600)?, want);
    let status = rollup_status(&stack)?;
    assert!(status["last_run"]["compacted"].is_object(), "{status}");
    Ok(())
}
