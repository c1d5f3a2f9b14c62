//! Nothing in an archive stalls the rollup: an archive that cannot be
//! applied is set aside after failing the same way on three runs, while
//! the archives behind it are applied; points of one series in another
//! unit or kind are converted or set aside, without failing the archive
//! they share with other tenants' batches; sums stay finite; and `/status`
//! is for operators only.

use e2e::*;
use proto::point::{Batch, Counter, Label, Point, Value};
use std::time::Duration;

fn point(metric: &str, unit: &str, t: u64, value: Value, labels: &[(&str, &str)]) -> Point {
    Point {
        metric: metric.into(),
        unit: unit.into(),
        time_unix_nano: t * 1_000_000_000,
        value: Some(value),
        labels: labels.iter().map(|(k, v)| Label { key: (*k).into(), value: (*v).into() }).collect(),
        ..Default::default()
    }
}

#[test]
fn an_archive_that_keeps_failing_is_set_aside_and_the_ones_behind_it_are_applied() -> anyhow::Result<()> {
    let stack = stack();
    let now_ms = now_nanos() / 1_000_000;
    // Older than the cursor's grace period, so that the cursor can move
    // past it, but after wherever the cursor is now.
    let cursor_ms = last_run(&stack)?["cursor"].as_str().and_then(proto::archive::key_time_ms).unwrap_or(0);
    let poison_ms = (cursor_ms + 1).max(now_ms - 15 * 60 * 1000);
    let poison = proto::archive::key(poison_ms, &[&unique("e2e-poison")]);
    put_object(&poison, b"\x1f\x8b this is not an archive")?;

    // Data sent after it, through ingest.
    let metric = unique("behind.poison");
    let t = now_ms / 1000 - 60;
    post_gauge(&stack, &metric, "ms", &[(t, 1.0), (t, 2.0)])?;
    rollup_until(&stack, Duration::from_secs(60), || Ok((counted(&metric, 3600)? == 2.0).then_some(())))?;

    // Three failing runs in a row set it aside.
    let status = rollup_until(&stack, Duration::from_secs(60), || {
        let status = rollup_status(&stack)?;
        let set_aside = status["failures"].as_array().into_iter().flatten().any(|f| f["key"] == poison && !f["quarantined_ms"].is_null());
        Ok(set_aside.then_some(status))
    })?;
    let failure = status["failures"].as_array().unwrap().iter().find(|f| f["key"] == poison).unwrap().clone();
    assert_eq!(failure["runs"], 3.0, "{failure}");
    assert!(failure["error"].as_str().unwrap().contains("not valid gzip"), "{failure}");
    assert!(status["quarantined"].as_u64().unwrap() >= 1, "{status}");
    let moved = format!("quarantine/{}", poison.strip_prefix("archives/").unwrap());
    assert_eq!(get_object(&moved)?, b"\x1f\x8b this is not an archive", "the file is kept under quarantine/");
    assert!(get_object(&poison).is_err(), "and no longer under archives/");

    // The runs after it go on without errors, and the cursor moves past it.
    let last = rollup_until(&stack, Duration::from_secs(60), || {
        let last = last_run(&stack)?;
        let past = last["cursor"].as_str().is_some_and(|c| c >= poison.as_str());
        Ok((past && !last["errors"].as_array().unwrap().iter().any(|e| e.as_str().unwrap().contains(&poison))).then_some(last))
    })?;
    assert_eq!(last["outcome"], "ok", "{last}");
    Ok(())
}

#[test]
fn one_series_in_another_unit_or_kind_does_not_fail_the_archive() -> anyhow::Result<()> {
    let stack = stack();
    let metric = unique("conflict.series");
    let other_metric = unique("conflict.other");
    let now_ms = now_nanos() / 1_000_000;
    let t = now_ms / 1000 - 120;
    let labels = [("route", "/a")];
    // One series (tenant, metric, labels) three ways in one archive: a
    // gauge in ms, the same gauge in s, and a counter; and another tenant's
    // batch beside them. This archive failed on every run before.
    let dev = Batch {
        tenant: "dev".into(),
        batch_id: unique("conflict-dev"),
        points: vec![
            point(&metric, "ms", t, Value::Gauge(5.0), &labels),
            point(&metric, "s", t, Value::Gauge(2.0), &labels),
            point(&metric, "ms", t, Value::Counter(Counter { value: 1.0, monotonic: true, ..Default::default() }), &labels),
        ],
        ..Default::default()
    };
    let other = Batch {
        tenant: "other".into(),
        batch_id: unique("conflict-other"),
        points: vec![point(&other_metric, "ms", t, Value::Gauge(7.0), &[])],
        ..Default::default()
    };
    let key = put_archive(now_ms - 1000, &unique("conflict"), vec![dev, other])?;
    rollup_until(&stack, Duration::from_secs(60), || Ok(applied_archive_keys(now_ms - 2000)?.contains(&key).then_some(())))?;

    // The ms gauge and the s gauge (as 2,000 ms) in one series.
    let rows = d1(&format!(
        "SELECT s.unit AS unit, s.kind AS kind, a.count AS n, a.sum AS sum FROM aggregates a JOIN series s ON s.id = a.series_id \
         WHERE s.metric = '{metric}' AND a.resolution = 3600"
    ))?;
    assert_eq!(rows.len(), 1, "one series: {rows:?}");
    assert_eq!((rows[0]["unit"].as_str(), rows[0]["kind"].as_str()), (Some("ms"), Some("gauge")), "{rows:?}");
    assert_eq!((rows[0]["n"].as_f64(), rows[0]["sum"].as_f64()), (Some(2.0), Some(2005.0)), "{rows:?}");
    let other_rows = d1(&format!("SELECT COUNT(*) AS n FROM series WHERE tenant = 'other' AND metric = '{other_metric}'"))?;
    assert_eq!(other_rows[0]["n"], 1, "the other tenant's batch in the same archive is applied");
    // The counter point is set aside (reported in the run's `set_aside`,
    // which rollup/src/prepare.rs tests), not counted into the gauge.
    Ok(())
}

#[test]
fn sums_beyond_the_largest_double_saturate_instead_of_failing() -> anyhow::Result<()> {
    let stack = stack();
    let metric = unique("huge.gauge");
    let t = now_nanos() / 1_000_000_000 - 60;
    // Two gauges of 1.7e308 in one bucket summed to Infinity, stored as
    // null, which failed the archive on every run.
    post_gauge(&stack, &metric, "", &[(t, 1.7e308), (t, 1.7e308)])?;
    rollup_until(&stack, Duration::from_secs(60), || Ok((counted(&metric, 3600)? == 2.0).then_some(())))?;
    let rows = d1(&format!("SELECT a.sum AS sum, a.max AS max FROM aggregates a JOIN series s ON s.id = a.series_id WHERE s.metric = '{metric}' AND a.resolution = 3600"))?;
    assert_eq!(rows[0]["sum"].as_f64(), Some(f64::MAX), "{rows:?}");
    assert_eq!(rows[0]["max"].as_f64(), Some(1.7e308));
    Ok(())
}

#[test]
fn every_double_is_stored_exactly() -> anyhow::Result<()> {
    let stack = stack();
    let metric = unique("exact.gauge");
    let t = now_nanos() / 1_000_000_000 - 60;
    // SQLite reads 1.7e308 back as 1.7000000000000001e308 and 1e-300 as
    // 9.999999999999999e-301 when they travel as JSON text; the rollup
    // sends each REAL as an exact pair instead (proto::d1::real_parts).
    let values = [1e-300, 1.7e308, -1.7e308, 5e-324, -2.5e-310, f64::MIN_POSITIVE, 0.1, 0.1 + 0.2, 123.456_789_012_345_68, 1.5e9];
    let labels: Vec<String> = (0..values.len()).map(|i| format!("v{i}")).collect();
    let points: Vec<(u64, f64, &str)> = values.iter().zip(&labels).map(|(&v, l)| (t, v, l.as_str())).collect();
    post_labelled_gauge(&stack, DEV_INGEST_KEY, &metric, "", "which", &points)?;
    rollup_until(&stack, Duration::from_secs(60), || Ok((counted(&metric, 3600)? == values.len() as f64).then_some(())))?;
    let rows = d1(&format!(
        "SELECT s.labels->>'$.which' AS which, a.sum AS sum, a.min AS min, a.max AS max, a.last AS last \
         FROM aggregates a JOIN series s ON s.id = a.series_id WHERE s.metric = '{metric}' AND a.resolution = 3600"
    ))?;
    assert_eq!(rows.len(), values.len(), "{rows:?}");
    for row in &rows {
        let i: usize = row["which"].as_str().and_then(|w| w[1..].parse().ok()).expect("a label v<i>");
        for column in ["sum", "min", "max", "last"] {
            let got = row[column].as_f64().map(f64::to_bits);
            assert_eq!(got, Some(values[i].to_bits()), "{column} of {:e}: {row}", values[i]);
        }
    }
    Ok(())
}

#[test]
fn status_needs_the_operator_key() -> anyhow::Result<()> {
    let stack = stack();
    let url = format!("{}/status", stack.rollup);
    let none = get(&url, &[])?;
    assert_eq!(none.status, 401, "{}", none.text());
    assert!(none.text().contains("STATUS_KEY"), "{}", none.text());
    let wrong = get(&url, &[("authorization", &format!("Bearer {DEV_READ_KEY}"))])?;
    assert_eq!(wrong.status, 401);
    assert!(rollup_status(&stack)?["last_run"].is_object());
    Ok(())
}
