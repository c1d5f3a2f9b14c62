//! The stack's basics: each Worker answers `GET /`, and keys are required.

use e2e::*;

#[test]
fn every_worker_reports_its_status() -> anyhow::Result<()> {
    let s = stack();
    for (url, name) in [(&s.ingest, "ingest"), (&s.rollup, "rollup"), (&s.dashboard, "dashboard-api")] {
        let r = get(&format!("{url}/"), &[])?;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["service"], name);
        assert_eq!(r.json()["status"], "ok");
    }
    Ok(())
}

#[test]
fn ingest_requires_a_valid_key() -> anyhow::Result<()> {
    let s = stack();
    let url = format!("{}/v1/metrics", s.ingest);
    for auth in [None, Some("Bearer wrong"), Some(format!("Bearer {DEV_READ_KEY}").as_str())] {
        let mut headers = vec![("content-type", "application/json")];
        if let Some(a) = auth {
            headers.push(("authorization", a));
        }
        let r = post(&url, &headers, b"{}")?;
        assert_eq!(r.status, 401, "{auth:?}");
        assert_eq!(r.json()["code"], 16, "an OTLP Status with UNAUTHENTICATED");
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    }
    Ok(())
}

#[test]
fn dashboard_api_requires_a_read_key_and_answers_grafanas_test_query() -> anyhow::Result<()> {
    let s = stack();
    let url = format!("{}/api/v1/query", s.dashboard);
    let r = post(&url, &[("content-type", "application/x-www-form-urlencoded")], b"query=1%2B1&time=4")?;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["status"], "error");
    assert!(r.header("www-authenticate").is_some());
    let r = post(
        &url,
        &[("content-type", "application/x-www-form-urlencoded"), ("authorization", &format!("Bearer {DEV_READ_KEY}"))],
        b"query=1%2B1&time=4",
    )?;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), serde_json::json!({"status":"success","data":{"resultType":"scalar","result":[4,"2"]}}));
    Ok(())
}
