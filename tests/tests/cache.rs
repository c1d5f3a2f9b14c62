//! Caching of query responses over closed time ranges: a repeated query is
//! answered from the Cache API, never across tenants; open ranges are not
//! cached; and a late point in a cached range makes the next answer include
//! it (the rollup moves the tenant's cache generation on).

use e2e::*;
use serde_json::Value;
use std::time::Duration;

/// (Cache-Status, body) of a GET with `key`.
fn query(stack: &Stack, key: &str, path_and_query: &str) -> anyhow::Result<(String, Value)> {
    let r = dashboard_get(stack, &format!("Bearer {key}"), path_and_query)?;
    Ok((r.header("cache-status").unwrap_or("").to_owned(), r.json()))
}

fn generation() -> anyhow::Result<f64> {
    let rows = d1("SELECT generation FROM cache_generation WHERE tenant = 'dev'")?;
    Ok(rows.first().and_then(|r| r["generation"].as_f64()).unwrap_or(0.0))
}

#[test]
fn closed_ranges_are_cached_until_late_data_arrives() -> anyhow::Result<()> {
    let stack = stack();
    let metric = unique("cached");
    let name = proto::names::prom_name(&metric);
    let now = now_nanos() / 1_000_000_000;
    // A minute an hour ago: closed.
    let m0 = now - now % 60 - 3600;
    post_gauge(&stack, &metric, "ms", &[(m0 + 1, 10.0), (m0 + 2, 20.0)])?;
    rollup_until(&stack, Duration::from_secs(60), || Ok((counted(&metric, 3600)? == 2.0).then_some(())))?;

    let max = format!("/api/v1/query?query={}&time={}", encode(&format!("{name}{{quantile=\"1\"}}")), m0 + 60);
    let value = |body: &Value| body["data"]["result"][0]["value"][1].clone();
    let (status, first) = query(&stack, DEV_READ_KEY, &max)?;
    assert_eq!((status.as_str(), value(&first)), ("dashboard-api; fwd=miss; stored", "20".into()), "{first}");
    let (status, again) = query(&stack, DEV_READ_KEY, &max)?;
    assert_eq!(status, "dashboard-api; hit");
    assert_eq!(again, first);

    // The same request with another tenant's key is never that entry.
    let (status, other) = query(&stack, OTHER_READ_KEY, &max)?;
    assert_eq!(status, "dashboard-api; fwd=miss; stored");
    assert_eq!(other["data"]["result"], serde_json::json!([]));

    // Open ranges are not cached: no time (now), or an end a minute ago.
    let (status, _) = query(&stack, DEV_READ_KEY, &format!("/api/v1/query?query={}", encode(&name)))?;
    assert_eq!(status, "dashboard-api; fwd=uri-miss");
    let recent = format!("/api/v1/query_range?query={}&start={}&end={}&step=60", encode(&name), now - 600, now - 60);
    assert_eq!(query(&stack, DEV_READ_KEY, &recent)?.0, "dashboard-api; fwd=uri-miss");
    // A closed range query is, like the instant one.
    let range = format!("/api/v1/query_range?query={}&start={}&end={}&step=60", encode(&format!("{name}{{quantile=\"1\"}}")), m0, m0 + 120);
    assert_eq!(query(&stack, DEV_READ_KEY, &range)?.0, "dashboard-api; fwd=miss; stored");
    assert_eq!(query(&stack, DEV_READ_KEY, &range)?.0, "dashboard-api; hit");

    // A late point in the cached minute: the rollup moves the generation on
    // in the same transaction, and the next answer includes the point.
    let before = generation()?;
    post_gauge(&stack, &metric, "ms", &[(m0 + 3, 30.0)])?;
    rollup_until(&stack, Duration::from_secs(60), || Ok((counted(&metric, 3600)? == 3.0).then_some(())))?;
    assert!(generation()? > before, "the late write left the generation at {before}");
    let (status, after) = query(&stack, DEV_READ_KEY, &max)?;
    assert_eq!((status.as_str(), value(&after)), ("dashboard-api; fwd=miss; stored", "30".into()), "{after}");
    let (status, range_after) = query(&stack, DEV_READ_KEY, &range)?;
    assert_eq!(status, "dashboard-api; fwd=miss; stored");
    assert!(range_after.to_string().contains("\"30\""), "{range_after}");
    Ok(())
}
