//! Late data: points hours or days old, sent through ingest after their
//! buckets were first written, land in the right bucket of every resolution
//! and merge into what is there; a bucket past its retention is not written.

use e2e::*;
use std::collections::BTreeMap;
use std::time::Duration;

const HOUR: u64 = 3600;
const DAY: u64 = 86_400;

/// (resolution, bucket start) → (count, sum) of the metric's buckets: its
/// hour and day rows from D1, and the minutes `want` names as dashboard-api
/// serves them (minutes live in head rows and blocks, which SQL cannot
/// read), each the increase of its count and sum over the minute.
fn rows(stack: &Stack, metric: &str, want: &BTreeMap<(u64, u64), (u64, f64)>) -> anyhow::Result<BTreeMap<(u64, u64), (u64, f64)>> {
    let sql = format!(
        "SELECT a.resolution AS r, a.bucket_start AS b, a.count AS n, a.sum AS s FROM aggregates a \
         JOIN series s ON s.id = a.series_id WHERE s.tenant = 'dev' AND s.metric = '{metric}' AND a.resolution > 60"
    );
    let mut out = BTreeMap::new();
    for r in d1(&sql)? {
        let field = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
        out.insert((field("r") as u64, field("b") as u64), (field("n") as u64, field("s")));
    }
    let prom = proto::names::prom_name(metric);
    let increase = |field: &str, start: u64| -> anyhow::Result<Option<f64>> {
        let q = encode(&format!("increase({prom}_{field}[1m])"));
        let r = get(
            &format!("{}/api/v1/query?query={q}&time={}", stack.dashboard, start + 60),
            &[("authorization", &format!("Bearer {DEV_READ_KEY}"))],
        )?;
        anyhow::ensure!(r.status == 200, "{}", r.text());
        Ok(r.json()["data"]["result"][0]["value"][1].as_str().and_then(|v| v.parse().ok()))
    };
    for &(r, start) in want.keys().filter(|(r, _)| *r == 60) {
        if let (Some(n), Some(s)) = (increase("count", start)?, increase("sum", start)?) {
            out.insert((r, start), (n as u64, s));
        }
    }
    Ok(out)
}

/// The rows that `points` (unix seconds, value) should produce when the
/// minute buckets before `minute_cutoff` are past retention.
fn expected(points: &[(u64, f64)], minute_cutoff: u64) -> BTreeMap<(u64, u64), (u64, f64)> {
    let mut out: BTreeMap<(u64, u64), (u64, f64)> = BTreeMap::new();
    for &(t, v) in points {
        for r in [60, HOUR, DAY] {
            let start = t - t % r;
            if r == 60 && start < minute_cutoff {
                continue;
            }
            let e = out.entry((r, start)).or_default();
            e.0 += 1;
            e.1 += v;
        }
    }
    out
}

#[test]
fn late_points_land_in_the_right_bucket_of_every_resolution() -> anyhow::Result<()> {
    let stack = stack();
    let metric = unique("late");
    let now = now_nanos() / 1_000_000_000;
    // The minute retention is two days (wrangler.toml).
    let minute_cutoff = now - 2 * DAY;
    let first = vec![(now - 3 * HOUR, 1.0), (now - 30, 2.0)];
    post_gauge(&stack, &metric, "ms", &first)?;
    let want = expected(&first, minute_cutoff);
    rollup_until(&stack, Duration::from_secs(60), || Ok((rows(&stack, &metric, &want)? == want).then_some(())))
        .map_err(|e| anyhow::anyhow!("{e}: rows {:?}, expected {want:?}", rows(&stack, &metric, &want)))?;

    // Later: a point in the same minute as the three-hour-old one, one in
    // another minute of that hour, one from yesterday and one three days old,
    // whose minute is past retention but whose hour and day are kept.
    let late = vec![(now - 3 * HOUR + 1, 10.0), (now - 3 * HOUR - 600, 20.0), (now - DAY - 7, 30.0), (now - 3 * DAY, 40.0)];
    post_gauge(&stack, &metric, "ms", &late)?;
    let all: Vec<(u64, f64)> = first.iter().chain(&late).copied().collect();
    let want = expected(&all, minute_cutoff);
    assert!(!want.contains_key(&(60, (now - 3 * DAY) - (now - 3 * DAY) % 60)));
    assert!(want.contains_key(&(HOUR, (now - 3 * DAY) - (now - 3 * DAY) % HOUR)));
    rollup_until(&stack, Duration::from_secs(60), || Ok((rows(&stack, &metric, &want)? == want).then_some(())))
        .map_err(|e| anyhow::anyhow!("{e}: rows {:?}, expected {want:?}", rows(&stack, &metric, &want)))?;

    // Coarser buckets are merges of finer ones: every point is in exactly
    // one day bucket.
    let rows = rows(&stack, &metric, &want)?;
    let day_count: u64 = rows.iter().filter(|((r, _), _)| *r == DAY).map(|(_, (n, _))| n).sum();
    assert_eq!(day_count, all.len() as u64);

    // The last 7 days at a 10-minute step reach past the minutes'
    // retention, so dashboard-api serves them from the hour buckets: the
    // three-day-old point shows, at the step whose hour-long window holds
    // its hour's start.
    let (step, end) = (600, now - now % 600);
    let start = end - 7 * DAY;
    let q = format!("{}{{quantile=\"1\"}}", proto::names::prom_name(&metric));
    let r = get(
        &format!("{}/api/v1/query_range?query={}&start={start}&end={end}&step={step}", stack.dashboard, encode(&q)),
        &[("authorization", &format!("Bearer {DEV_READ_KEY}"))],
    )?;
    assert_eq!(r.status, 200, "{}", r.text());
    let values = r.json()["data"]["result"][0]["values"].clone();
    let at = |t: u64| values.as_array().into_iter().flatten().find(|v| v[0].as_u64() == Some(t)).map(|v| v[1].clone());
    let hour = (now - 3 * DAY) - (now - 3 * DAY) % HOUR;
    let first_step = hour + step - (hour % step);
    assert_eq!(at(first_step), Some("40".into()), "{values}");
    assert_eq!(at(first_step + HOUR - step), Some("40".into()), "{values}");
    assert_eq!(at(first_step + HOUR), None, "{values}");
    Ok(())
}
