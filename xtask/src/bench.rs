//! `cargo xtask bench`: a load run against the local stack that reports the
//! CPU time workerd spends per ingest request, queue consumer included.
//!
//! Wall time on a shared two-core machine is noise; CPU time charged to the
//! ingest Worker's workerd process (utime + stime from /proc, all threads) is
//! what Workers bill. Idle CPU (timers, the local queue's polling) is measured
//! over the same wall time with no requests and subtracted. Locally the queue
//! broker and the R2 simulator run inside the same workerd process, so their
//! CPU is charged too: the figures are an upper bound on what production bills.

use crate::stack::{self, Deliveries, Logs, Options, Stack, DEV_INGEST_KEY, DEV_READ_KEY, DEV_STATUS_KEY, DEV_TENANT};
use crate::{root, step, tools, workers};
use anyhow::{bail, Context, Result};
use prost::Message;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const PORT_OFFSET: u16 = 20_000;
/// Rounds per payload: the queue consumer's batching makes single batches
/// vary, so the median of several is reported with the range.
const ROUNDS: usize = 7;

/// CPU seconds used so far by every `workerd` process in the given process
/// group.
pub(crate) fn workerd_cpu(group: u32) -> Result<f64> {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let mut total = 0.0;
    for entry in std::fs::read_dir("/proc")? {
        let path = entry?.path();
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else { continue };
        if let Some((pgrp, cpu)) = parse_stat(&stat) {
            if pgrp == group && stat.contains("(workerd)") {
                total += cpu as f64 / ticks;
            }
        }
    }
    Ok(total)
}

/// (process group, utime + stime in ticks) from a `/proc/<pid>/stat` line.
fn parse_stat(stat: &str) -> Option<(u32, u64)> {
    // The command name may contain spaces; fields resume after its ')'.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let pgrp = fields.get(2)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((pgrp, utime + stime))
}

/// Resident memory of the `workerd` processes in the group, in MiB: now
/// (`VmRSS`) and the most they ever held (`VmHWM`), summed.
pub(crate) fn workerd_memory(group: u32) -> Result<(f64, f64)> {
    let (mut rss, mut peak) = (0.0, 0.0);
    for entry in std::fs::read_dir("/proc")? {
        let path = entry?.path();
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else { continue };
        if !(stat.contains("(workerd)") && parse_stat(&stat).is_some_and(|(pgrp, _)| pgrp == group)) {
            continue;
        }
        let status = std::fs::read_to_string(path.join("status")).unwrap_or_default();
        let kib = |field: &str| -> f64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
                .unwrap_or(0.0)
        };
        rss += kib("VmRSS:") / 1024.0;
        peak += kib("VmHWM:") / 1024.0;
    }
    Ok((rss, peak))
}

/// Waits until the counter stops moving (the queue consumer has finished).
pub(crate) fn settle(group: u32) -> Result<f64> {
    let mut last = workerd_cpu(group)?;
    loop {
        std::thread::sleep(Duration::from_millis(1500));
        let now = workerd_cpu(group)?;
        if now - last < 0.005 {
            return Ok(now);
        }
        last = now;
    }
}

/// Runs the rollup's cron once, as Cloudflare would (`GET /__scheduled`),
/// and returns how long it took to answer; fails unless it answered 200.
pub(crate) fn run_cron(agent: &ureq::Agent, urls: &stack::Urls) -> Result<f64> {
    let started = Instant::now();
    let r = agent.get(&format!("{}/__scheduled?cron=*+*+*+*+*", urls.rollup)).call().context("running the rollup")?;
    if r.status() != 200 {
        bail!("the rollup run answered {}", r.status());
    }
    Ok(started.elapsed().as_secs_f64())
}

/// The rollup's report of its last run (`GET /status` → `last_run`).
pub(crate) fn last_run(agent: &ureq::Agent, urls: &stack::Urls) -> Result<serde_json::Value> {
    let body =
        agent.get(&format!("{}/status", urls.rollup)).set("authorization", &format!("Bearer {DEV_STATUS_KEY}")).call()?.into_string()?;
    let status: serde_json::Value = serde_json::from_str(&body)?;
    Ok(status["last_run"].clone())
}

/// Builds what is missing and starts a stack for a benchmark on a fresh
/// state folder under `target/<name>`, with the dev keys and `vars`.
pub(crate) fn fresh_stack(
    name: &str,
    port_offset: u16,
    vars: Vec<(&'static str, String, String)>,
    deliveries: Deliveries,
) -> Result<Stack> {
    let root = root();
    let tools = tools::ensure(&root)?;
    workers::build_all(&root, &tools)?;
    let work = root.join("target").join(name);
    let state = work.join("state");
    if state.exists() {
        std::fs::remove_dir_all(&state)?;
    }
    stack::migrate(&root, &state)?;
    stack::stop_on_signals()?;
    step("starting the stack");
    let opts = Options {
        state,
        port_offset,
        ingest_keys: format!(r#"{{"{DEV_INGEST_KEY}":"{DEV_TENANT}"}}"#),
        read_keys: format!(r#"{{"{DEV_READ_KEY}":"{DEV_TENANT}"}}"#),
        vars,
        logs: Logs::Files(work.join("logs")),
        deliveries,
    };
    Stack::start(&root, &opts)
}

pub fn run(requests: usize, only: Option<&str>) -> Result<()> {
    let stack = fresh_stack("bench", PORT_OFFSET, Vec::new(), Deliveries::Prompt)?;
    let group = stack.group_of("ingest").context("the ingest process")?;
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();

    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos() as u64;
    let metrics = proto::fixtures::metrics_request(1000, now - 1_000_000_000);
    let pb = metrics.encode_to_vec();
    let json = proto::fixtures::metrics_json(&metrics).into_bytes();
    let spans = proto::fixtures::traces_request(1000, now - 1_000_000_000).encode_to_vec();
    // Two requests that split the cost: the same body under a gzip header it
    // does not have is read and refused at once (the floor); points two hours
    // ahead are decoded and normalized, then all rejected, so nothing reaches
    // the queue, the consumer or R2.
    let future = proto::fixtures::metrics_request(1000, now + 7_200_000_000_000).encode_to_vec();
    let mut payloads = vec![
        ("metrics, protobuf, 1,000 points", "/v1/metrics", "application/x-protobuf", None, &pb, 200),
        ("metrics, JSON, 1,000 points", "/v1/metrics", "application/json", None, &json, 200),
        ("traces, protobuf, 1,000 spans", "/v1/traces", "application/x-protobuf", None, &spans, 200),
        ("floor: body read, then refused (bad gzip)", "/v1/metrics", "application/x-protobuf", Some("gzip"), &pb, 400),
        ("request path only: 1,000 points decoded, all rejected", "/v1/metrics", "application/x-protobuf", None, &future, 200),
    ];
    payloads.retain(|p| only.is_none_or(|o| p.0.contains(o)));
    if payloads.is_empty() {
        bail!("no payload's name contains {:?}", only.unwrap_or_default());
    }

    // Warm the isolate up, then measure idle CPU over a fixed time.
    for (_, path, ct, coding, body, status) in &payloads {
        send(&agent, &format!("{}{path}", stack.urls.ingest), ct, *coding, body, *status)?;
    }
    settle(group)?;
    let idle_start = workerd_cpu(group)?;
    let idle_wall = Duration::from_secs(10);
    std::thread::sleep(idle_wall);
    let idle_per_s = (workerd_cpu(group)? - idle_start) / idle_wall.as_secs_f64();

    step(&format!("{ROUNDS} rounds of {requests} requests per payload"));
    let mut rows: Vec<(&str, usize, Vec<f64>)> = payloads.iter().map(|p| (p.0, p.4.len(), Vec::new())).collect();
    for round in 0..ROUNDS {
        for (i, (name, path, ct, coding, body, status)) in payloads.iter().enumerate() {
            let before = settle(group)?;
            let started = Instant::now();
            for _ in 0..requests {
                send(&agent, &format!("{}{path}", stack.urls.ingest), ct, *coding, body, *status)?;
                if stack::stop_requested() {
                    bail!("interrupted");
                }
            }
            let after = settle(group)?;
            let wall = started.elapsed().as_secs_f64();
            let net = ((after - before) - idle_per_s * wall) * 1000.0 / requests as f64;
            eprintln!("  round {}: {name}: {net:.2} ms CPU per request", round + 1);
            rows[i].2.push(net);
        }
    }
    println!("\n| payload | body | workerd CPU per request, median | range over {ROUNDS} rounds |\n| --- | --- | --- | --- |");
    for (name, len, mut v) in rows {
        v.sort_by(f64::total_cmp);
        let median = v[v.len() / 2];
        println!("| {name} | {} KB | {median:.2} ms | {:.2}–{:.2} ms |", len / 1000, v[0], v[v.len() - 1]);
    }
    println!("\nidle: {:.2} ms of CPU per second (subtracted)", idle_per_s * 1000.0);
    drop(stack);
    Ok(())
}

pub(crate) fn send(agent: &ureq::Agent, url: &str, content_type: &str, coding: Option<&str>, body: &[u8], want: u16) -> Result<()> {
    let mut req = agent.post(url).set("content-type", content_type).set("authorization", &format!("Bearer {DEV_INGEST_KEY}"));
    if let Some(c) = coding {
        req = req.set("content-encoding", c);
    }
    let status = match req.send_bytes(body) {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(s, _)) => s,
        Err(e) => bail!("benchmark request failed: {e}"),
    };
    if status != want {
        bail!("ingest answered {status}, expected {want}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_group_and_cpu_from_proc_stat() {
        let line = "4242 (workerd) S 4200 4100 4100 0 -1 4194560 2000 0 0 0 150 25 0 0 20 0 9 0 123 0 0";
        assert_eq!(parse_stat(line), Some((4100, 175)));
        let odd = "7 (a (b) c) R 1 77 77 0 -1 0 0 0 0 0 3 4 0 0";
        assert_eq!(parse_stat(odd), Some((77, 7)));
        // This very process is found in its own group.
        let own = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(parse_stat(&own).is_some());
    }
}
