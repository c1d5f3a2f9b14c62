//! `cargo xtask bench`: a load run against the local stack that reports the
//! CPU time workerd spends per ingest request, queue consumer included.
//!
//! Wall time on a shared two-core machine is noise; CPU time charged to the
//! ingest Worker's workerd process (utime + stime from /proc, all threads) is
//! what Workers bill. Idle CPU (timers, the local queue's polling) is measured
//! over the same wall time with no requests and subtracted.

use crate::stack::{self, Logs, Options, Stack, DEV_INGEST_KEY, DEV_TENANT};
use crate::{root, step, tools, workers};
use anyhow::{bail, Context, Result};
use prost::Message;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const PORT_OFFSET: u16 = 20_000;

/// CPU seconds used so far by every `workerd` process in the given process
/// group.
fn workerd_cpu(group: u32) -> Result<f64> {
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

/// Waits until the counter stops moving (the queue consumer has finished).
fn settle(group: u32) -> Result<f64> {
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

pub fn run(requests: usize) -> Result<()> {
    let root = root();
    let tools = tools::ensure(&root)?;
    workers::build_all(&root, &tools)?;
    let work = root.join("target/bench");
    let state = work.join("state");
    if state.exists() {
        std::fs::remove_dir_all(&state)?;
    }
    stack::migrate(&root, &state)?;
    stack::stop_on_signals()?;
    step("starting the stack");
    let opts = Options {
        state,
        port_offset: PORT_OFFSET,
        ingest_keys: format!(r#"{{"{DEV_INGEST_KEY}":"{DEV_TENANT}"}}"#),
        read_keys: "{}".into(),
        logs: Logs::Files(work.join("logs")),
    };
    let stack = Stack::start(&root, &opts)?;
    let group = stack.group_of("ingest").context("the ingest process")?;
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();

    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos() as u64;
    let metrics = proto::fixtures::metrics_request(1000, now - 1_000_000_000);
    let pb = metrics.encode_to_vec();
    let json = proto::fixtures::metrics_json(&metrics).into_bytes();
    let spans = proto::fixtures::traces_request(1000, now - 1_000_000_000).encode_to_vec();
    let payloads = [
        ("metrics, protobuf, 1,000 points", "/v1/metrics", "application/x-protobuf", &pb),
        ("metrics, JSON, 1,000 points", "/v1/metrics", "application/json", &json),
        ("traces, protobuf, 1,000 spans", "/v1/traces", "application/x-protobuf", &spans),
    ];

    // Warm the isolate up, then measure idle CPU over a fixed time.
    for (_, path, ct, body) in &payloads {
        send(&agent, &format!("{}{path}", stack.urls.ingest), ct, body)?;
    }
    settle(group)?;
    let idle_start = workerd_cpu(group)?;
    let idle_wall = Duration::from_secs(10);
    std::thread::sleep(idle_wall);
    let idle_per_s = (workerd_cpu(group)? - idle_start) / idle_wall.as_secs_f64();

    step(&format!("{requests} requests per payload"));
    let mut rows = Vec::new();
    for (name, path, ct, body) in payloads {
        let before = settle(group)?;
        let started = Instant::now();
        for _ in 0..requests {
            send(&agent, &format!("{}{path}", stack.urls.ingest), ct, body)?;
            if stack::stop_requested() {
                bail!("interrupted");
            }
        }
        let after = settle(group)?;
        let wall = started.elapsed().as_secs_f64();
        let gross = (after - before) * 1000.0 / requests as f64;
        let net = gross - idle_per_s * wall * 1000.0 / requests as f64;
        eprintln!("  {name}: {} KB body, {gross:.2} ms CPU per request ({net:.2} ms net of idle)", body.len() / 1000);
        rows.push((name, body.len(), gross, net));
    }
    println!("\n| payload | body | workerd CPU per request | net of idle |\n| --- | --- | --- | --- |");
    for (name, len, gross, net) in rows {
        println!("| {name} | {} KB | {gross:.2} ms | {net:.2} ms |", len / 1000);
    }
    println!("\nidle: {:.2} ms of CPU per second", idle_per_s * 1000.0);
    drop(stack);
    Ok(())
}

fn send(agent: &ureq::Agent, url: &str, content_type: &str, body: &[u8]) -> Result<()> {
    let r = agent
        .post(url)
        .set("content-type", content_type)
        .set("authorization", &format!("Bearer {DEV_INGEST_KEY}"))
        .send_bytes(body)
        .map_err(|e| anyhow::anyhow!("ingest refused a benchmark request: {e}"))?;
    if r.status() != 200 {
        bail!("ingest answered {}", r.status());
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
