//! The real OpenTelemetry Python SDK exports metrics (gzip), spans and logs
//! to the local ingest; every point it sent is then found exactly once in
//! the R2 archives.

use anyhow::{bail, Context};
use e2e::*;
use proto::point::{Point, Value};
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What the archives hold for one service, summed over points.
#[derive(Debug, Default, PartialEq)]
struct Totals {
    /// metric → (sum of counter values or distribution counts, number of points)
    by_metric: BTreeMap<String, (f64, usize)>,
    error_spans: f64,
    error_logs: f64,
}

fn label<'a>(p: &'a Point, key: &str) -> Option<&'a str> {
    p.labels.iter().find(|l| l.key == key).map(|l| l.value.as_str())
}

fn add(t: &mut Totals, p: &Point) {
    let v = match &p.value {
        Some(Value::Counter(c)) => c.value,
        Some(Value::Distribution(d)) => d.count as f64,
        Some(Value::Gauge(g)) => *g,
        None => 0.0,
    };
    let e = t.by_metric.entry(p.metric.clone()).or_default();
    e.0 += v;
    e.1 += 1;
    if p.metric == "traces.span.metrics.calls" && label(p, "status.code") == Some("STATUS_CODE_ERROR") {
        t.error_spans += v;
    }
    if p.metric == "logs.records" && label(p, "severity") == Some("ERROR") {
        t.error_logs += v;
    }
}

#[test]
fn the_python_sdk_exports_everything_and_each_point_is_archived_once() -> anyhow::Result<()> {
    let stack = stack();
    let service = unique("sdk-service");
    let since_ms = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as u64 - 1000;
    let python = std::env::var("E2E_PYTHON").context("E2E_PYTHON is not set: run the end-to-end tests with `cargo xtask test`")?;
    let out =
        Command::new(python).arg(xtask::root().join("tests/python/export.py")).args([&stack.ingest, DEV_INGEST_KEY, &service]).output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the SDK's exports failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let sent: serde_json::Value = serde_json::from_str(stdout.trim())?;
    assert!(sent["results"].as_array().unwrap().len() >= 3, "{sent}");
    assert_eq!(sent["metric_exports"], 1, "one metrics export: {sent}");

    let f = |k: &str| sent[k].as_f64().unwrap();
    let want = |metric: &str, total: f64, points: usize| (metric.to_string(), (total, points));
    let expected = Totals {
        by_metric: BTreeMap::from([
            // One cumulative point per attribute set, as the SDK exported them.
            want("e2e.requests", f("requests"), 2),
            want("e2e.latency", f("latencies"), 1),
            want("e2e.inflight", 3.0, 1),
            want("e2e.temperature", 21.5, 1),
            want("traces.span.metrics.calls", f("spans"), 0),
            want("traces.span.metrics.duration", f("spans"), 0),
            want("logs.records", f("logs"), 0),
        ]),
        error_spans: f("error_spans"),
        error_logs: f("error_logs"),
    };

    // The queue consumer needs a moment; the rollup's ledger then names the
    // archives. Read each once and total this service's points.
    let mut read: BTreeMap<String, Vec<Point>> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    let totals = loop {
        run_rollup(&stack)?;
        for key in applied_archive_keys(since_ms)? {
            if let std::collections::btree_map::Entry::Vacant(slot) = read.entry(key) {
                let archive = read_archive(slot.key())?;
                // Points with their full label sets (shared ones merged back).
                let mine = archive
                    .batches
                    .iter()
                    .filter(|b| b.tenant == "dev")
                    .flat_map(|b| b.points.iter().map(move |p| Point { labels: b.labels_of(p), ..p.clone() }))
                    .filter(|p| label(p, "service.name") == Some(service.as_str()))
                    .collect();
                slot.insert(mine);
            }
        }
        let mut totals = Totals::default();
        read.values().flatten().for_each(|p| add(&mut totals, p));
        // Grouped metrics have one point per series and minute: compare
        // only their totals.
        for (metric, (_, n)) in totals.by_metric.iter_mut() {
            if metric.starts_with("traces.") || metric.starts_with("logs.") {
                *n = 0;
            }
        }
        if totals == expected {
            break totals;
        }
        if Instant::now() > deadline {
            bail!("archives hold {totals:#?}\nexpected {expected:#?}");
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(totals.by_metric["e2e.latency"].0, 200.0);

    // Further rollups add no archive with this service's points: exactly once.
    for _ in 0..2 {
        run_rollup(&stack)?;
    }
    for key in applied_archive_keys(since_ms)? {
        if !read.contains_key(&key) {
            let archive = read_archive(&key)?;
            let extra = archive
                .batches
                .iter()
                .flat_map(|b| b.points.iter().map(move |p| b.labels_of(p)))
                .filter(|labels| labels.iter().any(|l| l.key == "service.name" && l.value == service))
                .count();
            assert_eq!(extra, 0, "archive {key} repeats points");
        }
    }

    // And the data reads back through dashboard-api.
    let q = format!("e2e_temperature{{service_name=\"{service}\"}}");
    let now_s = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs_f64();
    let r = instant_query(&stack, &q, now_s)?;
    assert_eq!(r.json()["data"]["result"][0]["value"][1], "21.5", "{}", r.text());
    Ok(())
}

/// The SDK lowers an exponential histogram's scale within one cumulative
/// stream as values spread out; the counts and sums read back are still
/// those recorded (they were over-counted: each scale change looked like a
/// reset, and the point counted in full).
#[test]
fn the_python_sdk_lowering_an_exponential_histograms_scale_is_counted_once() -> anyhow::Result<()> {
    let stack = stack();
    let service = unique("sdk-exp");
    let python = std::env::var("E2E_PYTHON").context("E2E_PYTHON is not set: run the end-to-end tests with `cargo xtask test`")?;
    let out = Command::new(python)
        .arg(xtask::root().join("tests/python/exponential.py"))
        .args([&stack.ingest, DEV_INGEST_KEY, &service])
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the SDK's exports failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let sent: serde_json::Value = serde_json::from_str(stdout.trim())?;
    let scales: Vec<i64> = sent["scales"].as_array().unwrap().iter().filter_map(|s| s.as_i64()).collect();
    assert!(scales.windows(2).all(|w| w[0] >= w[1]) && scales.first() > scales.last(), "the scale went down: {sent}");
    let (count, sum) = (sent["count"].as_f64().unwrap(), sent["sum"].as_f64().unwrap());

    let now_s = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let t = (now_s / 60 + 2) * 60;
    let read = |q: &str| -> anyhow::Result<Option<f64>> {
        let r = instant_query(&stack, &format!("{q}{{service_name=\"{service}\"}}[1h])"), t as f64)?;
        Ok(r.json()["data"]["result"][0]["value"][1].as_str().and_then(|v| v.parse().ok()))
    };
    let counted = rollup_until(&stack, Duration::from_secs(90), || Ok(read("increase(e2e_exp_count")?.filter(|&n| n >= count)))?;
    run_rollup(&stack)?;
    assert_eq!(counted, count, "{sent}");
    assert_eq!(read("increase(e2e_exp_count")?, Some(count));
    assert_eq!(read("increase(e2e_exp_sum")?, Some(sum));
    Ok(())
}
