//! The run lease: while another run holds it, a cron run applies nothing;
//! once it is free, the next run applies the backlog and reports it.

use e2e::*;
use serde_json::json;
use std::time::Duration;

#[test]
fn a_run_applies_nothing_while_another_holds_the_lease() -> anyhow::Result<()> {
    let stack = stack();
    let metric = unique("lease.gauge");
    let until = now_nanos() / 1_000_000 + 10 * 60 * 1000;
    d1(&format!(
        "INSERT INTO rollup_lease (name, holder, until_ms) VALUES ('run', 'e2e-other-run', {until}) \
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms"
    ))?;
    let body = json!({ "resourceMetrics": [{ "scopeMetrics": [{ "metrics": [
        { "name": metric, "gauge": { "dataPoints": [{ "asDouble": 1.5 }, { "asDouble": 2.5 }] } } ] }] }] });
    let r = post_metrics_json(&stack, &body.to_string())?;
    assert_eq!(r.status, 200, "{}", r.text());
    // Long enough for the consumer to have written the archive.
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(1000));
        run_rollup(&stack)?;
    }
    assert_eq!(counted(&metric, 3600)?, 0.0, "nothing applied under another run's lease");

    d1("DELETE FROM rollup_lease WHERE holder = 'e2e-other-run'")?;
    rollup_until(&stack, Duration::from_secs(60), || Ok((counted(&metric, 3600)? == 2.0).then_some(())))?;
    let status = rollup_status(&stack)?;
    let last = &status["last_run"];
    assert_eq!(last["outcome"], "ok", "{status}");
    assert!(last["lag_ms"].is_u64() && last["backlog"].is_u64(), "{status}");
    assert!(d1("SELECT holder FROM rollup_lease")?.is_empty(), "a finished run gives the lease back");
    Ok(())
}
