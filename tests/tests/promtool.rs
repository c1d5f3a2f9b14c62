//! Prometheus' own client against dashboard-api: `promtool query instant`,
//! `range`, `labels` and `series` (Debian's `prometheus` package, unpacked
//! by `cargo xtask test`) read real ingest → rollup data, with the read key
//! as a Basic-auth password in the URL or as a Bearer header, and see
//! neither another tenant's data nor a query without a key.

use anyhow::Context;
use e2e::*;
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

/// Runs promtool with `args`; (success, stdout, stderr).
fn promtool(args: &[&str]) -> anyhow::Result<(bool, String, String)> {
    let bin = std::env::var("E2E_PROMTOOL").context("E2E_PROMTOOL is not set: run the end-to-end tests with `cargo xtask test`")?;
    let out = Command::new(bin).args(args).output()?;
    Ok((out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned()))
}

/// Runs promtool and fails with its output unless it succeeds.
fn ok(args: &[&str]) -> anyhow::Result<String> {
    let (success, stdout, stderr) = promtool(args)?;
    anyhow::ensure!(success, "promtool {args:?} failed:\n{stdout}\n{stderr}");
    Ok(stdout)
}

/// `{label: value}` of each element of promtool's `-o json` vector or matrix, with its values.
fn by_label(out: &str, label: &str) -> anyhow::Result<Vec<(String, Value)>> {
    let v: Value = serde_json::from_str(out).with_context(|| format!("promtool printed no JSON: {out}"))?;
    let mut items: Vec<(String, Value)> = v
        .as_array()
        .context("not a JSON array")?
        .iter()
        .map(|e| (e["metric"][label].as_str().unwrap_or("").to_owned(), e.get("value").or(e.get("values")).cloned().unwrap_or_default()))
        .collect();
    items.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(items)
}

#[test]
fn promtool_queries_the_dashboard_api() -> anyhow::Result<()> {
    let stack = stack();
    let prefix = unique("promtool").replace('.', "_");
    let (metric, route) = (format!("{prefix}.latency"), format!("{prefix}.route"));
    let (name, route_label) = (proto::names::prom_name(&metric), proto::names::prom_name(&route));
    let now = now_nanos() / 1_000_000_000;
    let m0 = now - now % 60 - 120;
    // One minute of latencies: 1..=100 ms on /a, 101..=200 ms on /b.
    let points: Vec<(u64, f64, &str)> = (1..=200u64).map(|i| (m0 + i % 60, i as f64, if i <= 100 { "/a" } else { "/b" })).collect();
    post_labelled_gauge(&stack, DEV_INGEST_KEY, &metric, "ms", &route, &points)?;
    // The other tenant: the same metric and label, a value of its own.
    post_labelled_gauge(&stack, OTHER_INGEST_KEY, &metric, "ms", &route, &[(m0, 5000.0, "/secret")])?;
    rollup_until(&stack, Duration::from_secs(60), || Ok((counted(&metric, 3600)? == 200.0).then_some(())))?;

    // Grafana-style Basic auth: any user, the read key as the password.
    let host = stack.dashboard.trim_start_matches("http://");
    let basic = format!("http://grafana:{DEV_READ_KEY}@{host}");
    let bearer = format!("Authorization=Bearer {DEV_READ_KEY}");
    let t = (m0 + 60).to_string();

    // instant: the p50 of each route over the minute before t.
    let q = format!("{name}{{quantile=\"0.5\"}}");
    let out = ok(&["query", "instant", "-o", "json", "--time", &t, &basic, &q])?;
    let got = by_label(&out, &route_label)?;
    assert_eq!(got.len(), 2, "{out}");
    assert_eq!((got[0].0.as_str(), &got[0].1[1]), ("/a", &json!("50")), "{out}");
    assert_eq!((got[1].0.as_str(), &got[1].1[1]), ("/b", &json!("150")), "{out}");
    // The default (PromQL) output: the p99 of both routes' merged samples.
    let out = ok(&["query", "instant", "--time", &t, &basic, &format!("sum({name}{{quantile=\"0.99\"}})")])?;
    assert_eq!(out.trim(), format!("{{}} => 198 @[{t}]"), "{out}");

    // range, with a Bearer header: the merged p50 at each step; the second
    // step's window holds no samples.
    let q = format!("histogram_quantile(0.5, sum({name}))");
    let (start, end) = ((m0 + 60).to_string(), (m0 + 120).to_string());
    let out =
        ok(&["query", "range", "-o", "json", "--header", &bearer, "--start", &start, "--end", &end, "--step", "1m", &stack.dashboard, &q])?;
    let got = by_label(&out, "quantile")?;
    assert_eq!(got, [(String::new(), json!([[m0 + 60, "100"]]))], "{out}");

    // labels: the label's values, the other tenant's "/secret" not among them.
    let out = ok(&["query", "labels", &basic, &route_label])?;
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["/a", "/b"], "{out}");
    let other = format!("http://grafana:{OTHER_READ_KEY}@{host}");
    let out = ok(&["query", "labels", &other, &route_label])?;
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["/secret"], "{out}");

    // series: the metric's two series, in Prometheus' label-set notation.
    let out = ok(&["query", "series", "--match", &name, &basic])?;
    let mut lines: Vec<&str> = out.lines().filter(|l| !l.is_empty()).collect();
    lines.sort();
    assert_eq!(
        lines,
        [format!("{{__name__=\"{name}\", {route_label}=\"/a\"}}"), format!("{{__name__=\"{name}\", {route_label}=\"/b\"}}")],
        "{out}"
    );

    // Errors reach promtool as Prometheus reports them.
    let (success, _, stderr) = promtool(&["query", "instant", &basic, "sum("])?;
    assert!(!success && stderr.contains("bad_data"), "{stderr}");
    let (success, _, stderr) = promtool(&["query", "instant", &stack.dashboard, "1"])?;
    assert!(!success && stderr.contains("401"), "{stderr}");
    Ok(())
}
