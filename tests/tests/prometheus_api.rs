//! The Prometheus HTTP API subset over real ingest → rollup data: range
//! queries, rates, merged quantiles, the catalog endpoints, Basic auth as
//! Grafana sends it, and tenant isolation (a key never sees another
//! tenant's series or label values, whatever the matchers).

use e2e::*;
use serde_json::{json, Value};
use std::time::Duration;

fn api(stack: &Stack, key: &str, path_and_query: &str) -> anyhow::Result<Value> {
    Ok(dashboard_get(stack, &format!("Bearer {key}"), path_and_query)?.json())
}

#[test]
fn range_queries_catalog_and_tenant_isolation() -> anyhow::Result<()> {
    let stack = stack();
    let prefix = unique("prom").replace('.', "_");
    let (lat, requests) = (format!("{prefix}.latency"), format!("{prefix}.requests"));
    let (lat_name, requests_name) = (proto::names::prom_name(&lat), proto::names::prom_name(&requests));
    let now = now_nanos() / 1_000_000_000;
    let m0 = now - now % 60 - 300;
    let attr = |k: &str, v: &str| json!({ "key": k, "value": { "stringValue": v } });
    // Two minutes of data: latencies 1..=100 on /a and 101..=200 on /b in
    // each, and request counts 10 then 20 per minute.
    let mut lat_points = Vec::new();
    for (minute, route, base) in [(m0, "/a", 0), (m0, "/b", 100), (m0 + 60, "/a", 0), (m0 + 60, "/b", 100)] {
        for i in 1..=100u64 {
            lat_points.push(json!({ "timeUnixNano": ((minute + i % 60) * 1_000_000_000).to_string(), "asDouble": (base + i) as f64,
                                    "attributes": [attr("route", route)] }));
        }
    }
    let counts: Vec<Value> = [(m0, 10), (m0 + 60, 20)]
        .iter()
        .map(|(t, n)| json!({ "timeUnixNano": ((t + 5) * 1_000_000_000).to_string(), "asInt": n.to_string(), "attributes": [attr("route", "/a")] }))
        .collect();
    let dev = json!({ "resourceMetrics": [{ "scopeMetrics": [{ "metrics": [
        { "name": lat, "unit": "ms", "gauge": { "dataPoints": lat_points } },
        { "name": requests, "sum": { "aggregationTemporality": 1, "isMonotonic": true, "dataPoints": counts } } ] }] }] });
    post_accepted(&stack, DEV_INGEST_KEY, &dev)?;
    // The other tenant: the same metric name, a label value of its own.
    let other = json!({ "resourceMetrics": [{ "scopeMetrics": [{ "metrics": [
        { "name": lat, "unit": "ms", "gauge": { "dataPoints": [
            { "timeUnixNano": (m0 * 1_000_000_000).to_string(), "asDouble": 5000.0, "attributes": [attr("route", "/secret")] } ] } } ] }] }] });
    post_accepted(&stack, OTHER_INGEST_KEY, &other)?;
    rollup_until(&stack, Duration::from_secs(60), || {
        let n = d1(&format!(
            "SELECT SUM(a.count) AS n FROM aggregates a JOIN series s ON s.id = a.series_id WHERE s.metric = '{lat}' AND a.resolution = 3600"
        ))?;
        Ok((n.first().and_then(|r| r["n"].as_f64()) == Some(401.0)).then_some(()))
    })?;

    // Range query at a 1-minute step: each step reads its own minute.
    let range = |key: &str, q: &str| {
        api(&stack, key, &format!("/api/v1/query_range?query={}&start={}&end={}&step=60", encode(q), m0 + 60, m0 + 120))
    };
    let r = range(DEV_READ_KEY, &format!("sum(increase({requests_name}[1m]))"))?;
    assert_eq!(r["data"]["resultType"], "matrix", "{r}");
    assert_eq!(r["data"]["result"][0]["values"], json!([[m0 + 60, "10"], [m0 + 120, "20"]]), "{r}");
    // The p50 of both routes together is that of 1..=200 (100), not an
    // average of the routes' p50s (100.5).
    let r = range(DEV_READ_KEY, &format!(r#"sum({lat_name}{{quantile="0.5"}})"#))?;
    assert_eq!(r["data"]["result"][0]["values"], json!([[m0 + 60, "100"], [m0 + 120, "100"]]), "{r}");
    let r = range(DEV_READ_KEY, &format!(r#"max by (route) ({lat_name}{{quantile="0.99"}})"#))?;
    assert_eq!(r["data"]["result"][0]["metric"], json!({ "route": "/a" }), "{r}");
    assert_eq!(r["data"]["result"][1]["values"][0], json!([m0 + 60, "199"]), "{r}");
    // POST form-encoded with Basic auth, as Grafana does.
    let body =
        format!("query={}&start={}&end={}&step=1m", encode(&format!("histogram_quantile(0.9, sum({lat_name}))")), m0 + 120, m0 + 120);
    let r = post(
        &format!("{}/api/v1/query_range", stack.dashboard),
        &[("content-type", "application/x-www-form-urlencoded"), ("authorization", &basic("grafana", DEV_READ_KEY))],
        body.as_bytes(),
    )?;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["data"]["result"][0]["values"], json!([[m0 + 120, "180"]]));
    let bad = get(
        &format!("{}/api/v1/query_range?query=1&start=0&end=20000&step=1", stack.dashboard),
        &[("authorization", &format!("Bearer {DEV_READ_KEY}"))],
    )?;
    assert_eq!((bad.status, bad.json()["errorType"].clone()), (400, json!("bad_data")), "{}", bad.text());

    // The catalog endpoints.
    let series = api(&stack, DEV_READ_KEY, &format!("/api/v1/series?match[]={}", encode(&lat_name)))?;
    assert_eq!(series["data"], json!([{ "__name__": lat_name, "route": "/a" }, { "__name__": lat_name, "route": "/b" }]));
    let names = api(&stack, DEV_READ_KEY, "/api/v1/label/__name__/values")?;
    for n in [&lat_name, &format!("{lat_name}_count"), &format!("{lat_name}_sum"), &requests_name] {
        assert!(names["data"].as_array().unwrap().contains(&json!(n)), "{n} in {names}");
    }
    let md = api(&stack, DEV_READ_KEY, &format!("/api/v1/metadata?metric={lat_name}"))?;
    assert_eq!(md["data"][&lat_name][0]["type"], "gauge");
    assert_eq!(md["data"].as_object().map(|o| o.len()), Some(1), "{md}");

    // The JSON API: percentiles per step of one route, sorted by time.
    let j = api(
        &stack,
        DEV_READ_KEY,
        &format!(
            "/api/v1/json/percentiles?metric={lat_name}&quantiles=0.5,0.99&start={}&end={}&step=60&label.route=%2Fb",
            m0 + 60,
            m0 + 120
        ),
    )?;
    assert_eq!(j["series"].as_array().map(Vec::len), Some(1), "{j}");
    assert_eq!(j["series"][0]["labels"], json!({ "route": "/b" }));
    let points = &j["series"][0]["points"];
    assert_eq!(points.as_array().map(Vec::len), Some(2), "{j}");
    assert_eq!((points[0]["t"].clone(), points[1]["t"].clone()), (json!(m0 + 60), json!(m0 + 120)));
    assert_eq!(points[0]["count"], 100);
    assert_eq!(points[0]["quantiles"], json!({ "0.5": 150.0, "0.99": 199.0 }));
    let metrics = api(&stack, DEV_READ_KEY, "/api/v1/json/metrics")?;
    let mine = metrics["metrics"].as_array().unwrap().iter().find(|m| m["name"] == lat_name.as_str()).cloned();
    assert_eq!(
        mine,
        Some(json!({ "name": lat_name, "kind": "gauge", "unit": "ms", "series": 2 })),
        "the other tenant's series are not counted"
    );
    let listed = api(&stack, DEV_READ_KEY, &format!("/api/v1/json/series?metric={lat_name}"))?;
    assert_eq!(listed["series"], json!([{ "route": "/a" }, { "route": "/b" }]));

    // Tenant isolation: whatever the matchers, a key sees its tenant only.
    for path in [
        "/api/v1/label/route/values".to_string(),
        format!("/api/v1/series?match[]={}", encode(r#"{__name__=~".+"}"#)),
        format!("/api/v1/series?match[]={}", encode(r#"{route="/secret"}"#)),
        "/api/v1/labels".to_string(),
        format!("/api/v1/json/series?metric={lat_name}"),
        format!("/api/v1/json/percentiles?metric={lat_name}&quantiles=1&start={}&end={}&step=60&label.route=%2Fsecret", m0, m0 + 120),
        format!("/api/v1/query?query={}&time={}", encode(&format!(r#"{lat_name}{{quantile="1"}}[10m]"#)), m0 + 120),
    ] {
        let body = api(&stack, DEV_READ_KEY, &path)?.to_string();
        let leaked = body.contains("/secret") || body.contains(r#""5000""#) || body.contains("5000.0");
        assert!(!leaked, "{path} leaks the other tenant: {body}");
    }
    let theirs = api(&stack, OTHER_READ_KEY, "/api/v1/label/route/values")?;
    assert_eq!(theirs["data"], json!(["/secret"]));
    let theirs = api(
        &stack,
        OTHER_READ_KEY,
        &format!("/api/v1/query?query={}&time={}", encode(&format!(r#"{lat_name}{{quantile="1"}}[10m]"#)), m0 + 120),
    )?;
    assert_eq!(theirs["data"]["result"][0]["value"][1], "5000", "{theirs}");
    Ok(())
}
