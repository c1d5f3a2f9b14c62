//! Hostile requests against all three Workers, each an ordinary request
//! with a valid key: every one gets the 4xx it deserves (never a 500, a
//! panic or a hang), and afterwards the Workers still serve valid traffic
//! and the data accepted before is intact. Also here: what a request can
//! make count wrongly (a repeated time-less body, a cache key), and the
//! dead-letter path.

use e2e::*;
use flate2::{write::GzEncoder, Compression};
use serde_json::{json, Value};
use std::io::Write;
use std::time::{Duration, Instant};

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn ingest_json(stack: &Stack, path: &str, extra: &[(&str, &str)], body: &[u8]) -> anyhow::Result<Reply> {
    let auth = format!("Bearer {DEV_INGEST_KEY}");
    let mut headers = vec![("content-type", "application/json"), ("authorization", auth.as_str())];
    headers.extend_from_slice(extra);
    post(&format!("{}{path}", stack.ingest), &headers, body)
}

fn read_auth() -> String {
    format!("Bearer {DEV_READ_KEY}")
}

/// A GET of dashboard-api, whatever it answers.
fn dashboard(stack: &Stack, path_and_query: &str) -> anyhow::Result<Reply> {
    get(&format!("{}{path_and_query}", stack.dashboard), &[("authorization", &read_auth())])
}

/// The p50, p99 and count of `metric`'s samples over [t − 1h, t), read back.
fn readback(stack: &Stack, metric: &str, t: u64) -> anyhow::Result<Vec<String>> {
    let name = metric.replace('.', "_");
    let mut out = Vec::new();
    for q in [format!("{name}{{quantile=\"0.5\"}}[1h]"), format!("{name}{{quantile=\"0.99\"}}[1h]"), format!("increase({name}_count[1h])")]
    {
        let r = instant_query(stack, &q, t as f64)?;
        anyhow::ensure!(r.status == 200, "{q}: {}", r.text());
        out.push(r.json()["data"]["result"][0]["value"][1].as_str().unwrap_or("none").to_owned());
    }
    Ok(out)
}

#[test]
fn hostile_requests_get_4xx_and_the_service_and_its_data_survive() -> anyhow::Result<()> {
    let stack = stack();
    // Data accepted before: 1..=100 ms, read back as p50 50, p99 99.
    let metric = unique("hostile.before");
    let now_s = now_nanos() / 1_000_000_000;
    let t0 = now_s - 120;
    let points: Vec<(u64, f64)> = (1..=100).map(|v| (t0, f64::from(v))).collect();
    post_gauge(&stack, &metric, "ms", &points)?;
    rollup_until(&stack, Duration::from_secs(60), || Ok((counted(&metric, 3600)? == 100.0).then_some(())))?;
    let at = (now_s / 60 + 2) * 60;
    let before = readback(&stack, &metric, at)?;
    assert_eq!(before, ["50", "99", "100"]);

    // --- ingest ---
    // 300,000 distinct resource attributes: once 10^10 comparisons and no
    // answer for over a minute; rejected at the 65th now.
    let attrs: Vec<Value> = (0..300_000).map(|i| json!({ "key": format!("k{i}"), "value": { "stringValue": "v" } })).collect();
    let flood = json!({ "resourceMetrics": [{ "resource": { "attributes": attrs },
        "scopeMetrics": [{ "metrics": [{ "name": "flood", "gauge": { "dataPoints": [{ "asDouble": 1 }] } }] }] }] });
    let started = Instant::now();
    let r = ingest_json(&stack, "/v1/metrics", &[("content-encoding", "gzip")], &gzip(flood.to_string().as_bytes()))?;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["partialSuccess"]["rejectedDataPoints"], "1", "{}", r.text());
    assert!(r.text().contains("more than the 64 allowed"), "{}", r.text());
    eprintln!("300,000 attributes answered in {:?}", started.elapsed());
    // Deeply nested attribute values.
    let mut v = String::from(r#"{"stringValue":"x"}"#);
    for _ in 0..5000 {
        v = format!(r#"{{"arrayValue":{{"values":[{v}]}}}}"#);
    }
    let nested = format!(r#"{{"resourceMetrics":[{{"resource":{{"attributes":[{{"key":"k","value":{v}}}]}}}}]}}"#);
    let r = ingest_json(&stack, "/v1/metrics", &[], nested.as_bytes())?;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("nested"), "{}", r.text());
    // A metric name of 100 KB and a span name of 100 KB.
    let long = "n".repeat(100_000);
    let body = json!({ "resourceMetrics": [{ "scopeMetrics": [{ "metrics": [{ "name": long, "gauge": { "dataPoints": [{ "asDouble": 1 }] } }] }] }] });
    let r = ingest_json(&stack, "/v1/metrics", &[], body.to_string().as_bytes())?;
    assert_eq!((r.status, r.json()["partialSuccess"]["rejectedDataPoints"].as_str()), (200, Some("1")), "{}", r.text());
    let t = now_nanos() - 60_000_000_000;
    let spans = json!({ "resourceSpans": [{ "scopeSpans": [{ "spans": [
        { "name": long, "startTimeUnixNano": t.to_string(), "endTimeUnixNano": (t + 1000).to_string() } ] }] }] });
    let r = ingest_json(&stack, "/v1/traces", &[], spans.to_string().as_bytes())?;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("were cut"), "{}", r.text());

    // --- dashboard-api ---
    let bad_data = |path: &str| -> anyhow::Result<()> {
        let r = dashboard(&stack, path)?;
        anyhow::ensure!(r.status == 400 && r.json()["errorType"] == "bad_data", "{path}: {} {}", r.status, r.text());
        Ok(())
    };
    let panics = ["up[1e30]", "rate(up[2e19])", "up offset inf", "up offset nan", "up[5m:1e30]", "up @ 5 offset -1e30"];
    for q in panics {
        let e = encode(q);
        bad_data(&format!("/api/v1/query?query={e}&time=100"))?;
        bad_data(&format!("/api/v1/query_range?query={e}&start=0&end=600&step=60"))?;
        bad_data(&format!("/api/v1/series?match[]={e}"))?;
        bad_data(&format!("/api/v1/labels?match[]={e}"))?;
        bad_data(&format!("/api/v1/label/route/values?match[]={e}"))?;
        // And as a form, as Grafana posts it.
        let r = post(
            &format!("{}/api/v1/query", stack.dashboard),
            &[("authorization", &read_auth()), ("content-type", "application/x-www-form-urlencoded")],
            format!("query={e}&time=100").as_bytes(),
        )?;
        assert_eq!(r.status, 400, "POST {q}: {}", r.text());
    }
    for path in ["/api/v1/label/values", "/api/v1/label//values"] {
        let r = dashboard(&stack, path)?;
        assert_eq!(r.status, 404, "{path}: {}", r.text());
    }
    bad_data(&format!("/api/v1/query?query={}&time=100", encode(&format!("{}up{}", "(".repeat(10_000), ")".repeat(10_000)))))?;
    // 100 selectors: one D1 query each, once.
    let many = (0..100).map(|i| format!("a_{i}")).collect::<Vec<_>>().join(" + ");
    let r = dashboard(&stack, &format!("/api/v1/query?query={}&time=100", encode(&many)))?;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("100 selectors"), "{}", r.text());
    let r = dashboard(&stack, &format!("/api/v1/json/percentiles?metric=x&quantiles={}", vec!["0.5"; 21].join(",")))?;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("21 quantiles"), "{}", r.text());
    let huge = format!("query=up&time=100&pad={}", "x".repeat(2 << 20));
    let r = post(
        &format!("{}/api/v1/query", stack.dashboard),
        &[("authorization", &read_auth()), ("content-type", "application/x-www-form-urlencoded")],
        huge.as_bytes(),
    )?;
    assert_eq!(r.status, 413, "{}", r.text());

    // --- rollup ---
    for auth in ["", "Bearer wrong", &read_auth()] {
        let r = get(&format!("{}/status", stack.rollup), &[("authorization", auth)])?;
        assert_eq!(r.status, 401, "{auth}: {}", r.text());
    }

    // Everything still serves, and the data from before is as it was.
    let after = unique("hostile.after");
    post_gauge(&stack, &after, "ms", &[(t0, 7.0)])?;
    rollup_until(&stack, Duration::from_secs(60), || Ok((counted(&after, 3600)? == 1.0).then_some(())))?;
    assert_eq!(readback(&stack, &metric, at)?, before);
    assert!(rollup_status(&stack)?["last_run"].is_object());
    Ok(())
}

/// The series × buckets budget and the catalog's `limit`.
#[test]
fn a_query_beyond_its_budget_is_refused_before_it_is_read() -> anyhow::Result<()> {
    let stack = stack();
    let metric = unique("budget.gauge");
    let now_s = now_nanos() / 1_000_000_000;
    let t0 = now_s - 120;
    // 30 series of one point each.
    let points: Vec<(u64, f64, String)> = (0..30).map(|i| (t0, f64::from(i), format!("{i:02}"))).collect();
    let refs: Vec<(u64, f64, &str)> = points.iter().map(|(t, v, l)| (*t, *v, l.as_str())).collect();
    post_labelled_gauge(&stack, DEV_INGEST_KEY, &metric, "ms", "i", &refs)?;
    rollup_until(&stack, Duration::from_secs(60), || Ok((counted(&metric, 3600)? == 30.0).then_some(())))?;
    let name = metric.replace('.', "_");
    // A day at a minute's step: 30 series × 1,441 buckets > 30,000.
    let end = (now_s / 60) * 60;
    let day = format!("/api/v1/query_range?query={}&start={}&end={end}&step=60", encode(&name), end - 86_400);
    let r = dashboard(&stack, &day)?;
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.json()["errorType"], "execution");
    assert!(r.text().contains("43230 buckets") && r.text().contains("label matchers"), "{}", r.text());
    // Narrowed to a few series, or to the last hour, it is served.
    let narrow = format!("/api/v1/query_range?query={}&start={}&end={end}&step=60", encode(&format!("{name}{{i=~\"0.\"}}")), end - 86_400);
    assert_eq!(dashboard(&stack, &narrow)?.status, 200);
    // The catalog's limit, with Prometheus' warning.
    let r = dashboard(&stack, &format!("/api/v1/label/i/values?match[]={}&limit=5", encode(&name)))?;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["data"], json!(["00", "01", "02", "03", "04"]));
    assert_eq!(r.json()["warnings"], json!(["results truncated due to limit"]));
    let r = dashboard(&stack, &format!("/api/v1/series?match[]={}", encode(&name)))?;
    assert_eq!(r.json()["data"].as_array().map(Vec::len), Some(30));
    assert!(r.json().get("warnings").is_none());
    Ok(())
}

#[test]
fn a_timeless_body_sent_twice_counts_twice() -> anyhow::Result<()> {
    let stack = stack();
    let metric = unique("heartbeat");
    // No timestamp: each send is a new heartbeat at its receive time.
    let body = json!({ "resourceMetrics": [{ "scopeMetrics": [{ "metrics": [{ "name": metric,
        "sum": { "aggregationTemporality": 1, "isMonotonic": true, "dataPoints": [{ "asInt": "1" }] } }] }] }] });
    post_accepted(&stack, DEV_INGEST_KEY, &body)?;
    post_accepted(&stack, DEV_INGEST_KEY, &body)?;
    rollup_until(&stack, Duration::from_secs(60), || Ok((counted(&metric, 3600)? >= 2.0).then_some(())))?;
    run_rollup(&stack)?;
    assert_eq!(counted(&metric, 3600)?, 2.0);
    Ok(())
}

#[test]
fn repeated_time_parameters_are_not_one_cache_entry() -> anyhow::Result<()> {
    let stack = stack();
    let metric = unique("cache.order");
    let now_s = now_nanos() / 1_000_000_000;
    // Two minutes, well closed, with different values.
    let (a, b) = ((now_s / 60 - 30) * 60, (now_s / 60 - 20) * 60);
    post_gauge(&stack, &metric, "", &[(a, 1.0), (b, 2.0)])?;
    rollup_until(&stack, Duration::from_secs(60), || Ok((counted(&metric, 3600)? == 2.0).then_some(())))?;
    let name = encode(&metric.replace('.', "_"));
    let at = |first: u64, second: u64| -> anyhow::Result<Value> {
        let r = dashboard_get(&stack, &read_auth(), &format!("/api/v1/query?query={name}&time={first}&time={second}"))?;
        Ok(r.json()["data"]["result"][0]["value"][1].clone())
    };
    // Evaluated at the first time given: each order its own answer, even
    // once the other order is cached.
    assert_eq!(at(a + 60, b + 60)?, "1");
    assert_eq!(at(b + 60, a + 60)?, "2");
    assert_eq!(at(a + 60, b + 60)?, "1");
    Ok(())
}

#[test]
fn a_message_that_cannot_be_archived_is_parked_as_a_dead_letter() -> anyhow::Result<()> {
    let stack = stack();
    let before = rollup_status(&stack)?["dead_letters"]["count"].as_u64().unwrap_or(0);
    let metric = unique("dead.letter");
    let t = now_nanos() / 1_000_000_000 - 60;
    // The test stack lets this header queue one unreadable message beside
    // the request's batches (TEST_FAULTS, ingest/src/consumer.rs).
    let body = json!({ "resourceMetrics": [{ "scopeMetrics": [{ "metrics": [{ "name": metric, "gauge": { "dataPoints": [
        { "timeUnixNano": (t * 1_000_000_000).to_string(), "asDouble": 3 } ] } }] }] }] });
    let r = ingest_json(&stack, "/v1/metrics", &[("x-test-fault", "dead-letter")], body.to_string().as_bytes())?;
    assert_eq!(r.status, 200, "{}", r.text());
    // The request's own data is archived and counted as usual...
    rollup_until(&stack, Duration::from_secs(60), || Ok((counted(&metric, 3600)? == 1.0).then_some(())))?;
    // ...and the unreadable message, retried until the queue gives up on
    // it, is parked under dead-letter/ and counted in /status.
    let deadline = Instant::now() + Duration::from_secs(120);
    let letters = loop {
        let status = rollup_status(&stack)?;
        let letters = status["dead_letters"].clone();
        if letters["count"].as_u64().unwrap_or(0) > before {
            break letters;
        }
        anyhow::ensure!(Instant::now() < deadline, "no dead letter after 120 s: {status}");
        std::thread::sleep(Duration::from_secs(2));
    };
    let key = letters["latest"].as_str().expect("the newest dead letter's key");
    assert!(key.starts_with("dead-letter/"), "{letters}");
    assert_eq!(get_object(key)?, vec![0xff; 16]);
    Ok(())
}
