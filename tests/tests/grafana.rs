//! The calls Grafana's built-in Prometheus data source makes, in the order a
//! user meets them (README, "Grafana"): "Save & test", the metric browser,
//! a template variable, then a panel's range query, each sent as Grafana
//! sends it (form-encoded POST or GET, Basic auth with the read key as the
//! password, integer unix times).

use e2e::*;
use serde_json::{json, Value};
use std::time::Duration;

fn grafana_get(stack: &Stack, path_and_query: &str) -> anyhow::Result<Value> {
    Ok(dashboard_get(stack, &basic("grafana", DEV_READ_KEY), path_and_query)?.json())
}

fn grafana_post(stack: &Stack, path: &str, form: &[(&str, &str)]) -> anyhow::Result<Value> {
    let body = form.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect::<Vec<_>>().join("&");
    let r = post(
        &format!("{}{path}", stack.dashboard),
        &[("content-type", "application/x-www-form-urlencoded"), ("authorization", &basic("grafana", DEV_READ_KEY))],
        body.as_bytes(),
    )?;
    anyhow::ensure!(r.status == 200, "POST {path} {body} answered {}: {}", r.status, r.text());
    Ok(r.json())
}

#[test]
fn grafanas_call_sequence() -> anyhow::Result<()> {
    let stack = stack();
    let prefix = unique("grafana").replace('.', "_");
    let (metric, service) = (format!("{prefix}.duration"), format!("{prefix}.service"));
    let (name, service_label) = (proto::names::prom_name(&metric), proto::names::prom_name(&service));
    let now = now_nanos() / 1_000_000_000;
    let m0 = now - now % 60 - 180;
    // Two minutes: 1..=100 ms from checkout, then 101..=200 ms from search.
    let points: Vec<(u64, f64, &str)> = (1..=100u64)
        .map(|i| (m0 + i % 60, i as f64, "checkout"))
        .chain((101..=200u64).map(|i| (m0 + 60 + i % 60, i as f64, "search")))
        .collect();
    post_labelled_gauge(&stack, DEV_INGEST_KEY, &metric, "ms", &service, &points)?;
    rollup_until(&stack, Duration::from_secs(60), || Ok((counted(&metric, 3600)? == 200.0).then_some(())))?;
    let (start, end) = ((m0 - 3600).to_string(), (m0 + 120).to_string());

    // "Save & test": the flavour, then a trivial query.
    let info = grafana_get(&stack, "/api/v1/status/buildinfo")?;
    assert_eq!(info["status"], "success");
    assert!(info["data"]["version"].as_str().is_some_and(|v| v.starts_with('2')), "{info}");
    let test = grafana_post(&stack, "/api/v1/query", &[("query", "1+1"), ("time", "4")])?;
    assert_eq!(test["data"], json!({"resultType": "scalar", "result": [4, "2"]}));

    // The metric browser: label names, metric names, metadata.
    let labels = grafana_get(&stack, &format!("/api/v1/labels?start={start}&end={end}"))?;
    assert!(labels["data"].as_array().unwrap().contains(&json!(service_label)), "{labels}");
    let names = grafana_get(&stack, &format!("/api/v1/label/__name__/values?start={start}&end={end}"))?;
    for n in [name.clone(), format!("{name}_count"), format!("{name}_sum")] {
        assert!(names["data"].as_array().unwrap().contains(&json!(n)), "{n} in {names}");
    }
    let meta = grafana_get(&stack, &format!("/api/v1/metadata?metric={name}"))?;
    assert_eq!(meta["data"][&name][0]["unit"], "ms", "{meta}");

    // A template variable: label_values(<name>, <service>).
    let values = grafana_get(&stack, &format!("/api/v1/label/{service_label}/values?match[]={name}&start={start}&end={end}"))?;
    assert_eq!(values["data"], json!(["checkout", "search"]));

    // A panel: p99 per service at a 1-minute step, as a POST range query.
    let q = format!("max by ({service_label}) ({name}{{quantile=\"0.99\"}})");
    let panel = grafana_post(
        &stack,
        "/api/v1/query_range",
        &[("query", &q), ("start", &(m0 + 60).to_string()), ("end", &(m0 + 120).to_string()), ("step", "60")],
    )?;
    assert_eq!(panel["data"]["resultType"], "matrix");
    let mut series: Vec<(String, Value)> = panel["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["metric"][&service_label].as_str().unwrap_or("").to_owned(), s["values"].clone()))
        .collect();
    series.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(series, [("checkout".to_string(), json!([[m0 + 60, "99"]])), ("search".to_string(), json!([[m0 + 120, "199"]]))], "{panel}");
    Ok(())
}
