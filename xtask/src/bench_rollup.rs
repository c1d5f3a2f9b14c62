//! `cargo xtask bench-rollup`: one cron run of the rollup over 100,000
//! points in the local runtime, timed (wall) and charged (workerd CPU).
//!
//! The points go through ingest as 100 OTLP requests of the benchmark
//! fixture (1,000 points over 1,000 series), so the archives are the ones
//! production writes. The rollup's budget is raised so that one run takes
//! them all. Locally D1 (SQLite) runs inside the rollup's workerd process,
//! so its CPU is charged to the run: the figure is an upper bound on the
//! Worker's own CPU time.

use crate::bench::{fresh_stack, last_run, run_cron, send, settle};
use crate::stack::{self, Deliveries, Stack};
use crate::step;
use anyhow::{bail, Context, Result};
use prost::Message;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const PORT_OFFSET: u16 = 30_000;
const POINTS_PER_REQUEST: usize = 1000;

/// One timed run: wall seconds, workerd CPU seconds, the rollup's workerd
/// memory afterwards (resident, and the most it has held, in MiB) and the
/// run's report.
struct Run {
    wall: f64,
    cpu: f64,
    memory: (f64, f64),
    report: serde_json::Value,
}

fn run_once(agent: &ureq::Agent, stack: &Stack, group: u32) -> Result<Run> {
    let before = settle(group)?;
    let wall = run_cron(agent, &stack.urls)?;
    let cpu = settle(group)? - before;
    let report = last_run(agent, &stack.urls)?;
    let memory = crate::bench::workerd_memory(group)?;
    Ok(Run { wall, cpu, memory, report })
}

/// Sends `points` points through ingest as fixture requests, one second
/// apart in time, and waits for the queue consumer to write the archives.
fn ingest(agent: &ureq::Agent, stack: &Stack, points: usize) -> Result<()> {
    let group = stack.group_of("ingest").context("the ingest process")?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos() as u64;
    let requests = points / POINTS_PER_REQUEST;
    for i in 0..requests {
        let t = now - (requests - i) as u64 * 1_000_000_000;
        let body = proto::fixtures::metrics_request(POINTS_PER_REQUEST, t).encode_to_vec();
        send(agent, &format!("{}/v1/metrics", stack.urls.ingest), "application/x-protobuf", None, &body, 200)?;
        if stack::stop_requested() {
            bail!("interrupted");
        }
    }
    settle(group)?;
    Ok(())
}

pub fn run(points: usize) -> Result<()> {
    if points < POINTS_PER_REQUEST {
        bail!("--points must be at least {POINTS_PER_REQUEST}");
    }
    let vars = vec![
        ("rollup", "MAX_POINTS_PER_RUN".into(), (points * 2).to_string()),
        ("rollup", "MAX_ARCHIVES_PER_RUN".into(), "10000".into()),
        ("rollup", "MAX_RUN_MS".into(), "3600000".into()),
    ];
    let stack = fresh_stack("bench-rollup", PORT_OFFSET, vars, Deliveries::Prompt)?;
    let group = stack.group_of("rollup").context("the rollup process")?;
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(900)).build();
    // A first run on an empty bucket warms the isolate up.
    run_once(&agent, &stack, group)?;

    let mut rows = Vec::new();
    for what in ["into new buckets", "merged into the stored buckets", "nothing new (listing only)"] {
        if !what.starts_with("nothing") {
            step(&format!("ingesting {points} points"));
            ingest(&agent, &stack, points)?;
        }
        step(&format!("one rollup run: {what}"));
        let run = run_once(&agent, &stack, group)?;
        let applied = run.report["points"].as_u64().unwrap_or(0);
        if !what.starts_with("nothing") && applied != points as u64 {
            bail!("the run applied {applied} points, not {points}: {}", run.report);
        }
        eprintln!(
            "  {:.2} s wall, {:.2} s workerd CPU, {} archives, wasm memory {} MiB, workerd {:.0} MiB resident ({:.0} MiB at most)",
            run.wall,
            run.cpu,
            run.report["archives"],
            mib(&run.report),
            run.memory.0,
            run.memory.1
        );
        rows.push((what, run));
    }
    println!(
        "\n| one cron run over {points} points | archives | wall | workerd CPU (D1 included) | wasm memory | workerd resident after (most held) |\n| --- | --- | --- | --- | --- | --- |"
    );
    for (what, run) in rows {
        println!(
            "| {what} | {} | {:.2} s | {:.2} s | {} MiB | {:.0} MiB ({:.0} MiB) |",
            run.report["archives"],
            run.wall,
            run.cpu,
            mib(&run.report),
            run.memory.0,
            run.memory.1
        );
    }
    drop(stack);
    Ok(())
}

/// The run report's wasm memory in MiB.
fn mib(report: &serde_json::Value) -> u64 {
    report["wasm_memory_bytes"].as_u64().unwrap_or(0) >> 20
}

/// `--default-budget`: ingests `points` and runs the rollup with its
/// default budget until the backlog is drained, timing every run: how a
/// backlog drains in production, and whether any run is slow to answer.
pub fn drain(points: usize) -> Result<()> {
    if points < POINTS_PER_REQUEST {
        bail!("--points must be at least {POINTS_PER_REQUEST}");
    }
    let stack = fresh_stack("bench-rollup", PORT_OFFSET, Vec::new(), Deliveries::Prompt)?;
    let group = stack.group_of("rollup").context("the rollup process")?;
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(900)).build();
    run_once(&agent, &stack, group)?;
    step(&format!("ingesting {points} points"));
    ingest(&agent, &stack, points)?;
    println!("| run | points | stopped by | backlog | wall | workerd CPU (D1 included) | wasm memory | workerd resident (most held) |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    let mut applied = 0;
    for i in 1..=30 {
        let run = run_once(&agent, &stack, group)?;
        applied += run.report["points"].as_u64().unwrap_or(0);
        println!(
            "| {i} | {} | {} | {} | {:.2} s | {:.2} s | {} MiB | {:.0} MiB ({:.0} MiB) |",
            run.report["points"],
            run.report["stopped_by"],
            run.report["backlog"],
            run.wall,
            run.cpu,
            mib(&run.report),
            run.memory.0,
            run.memory.1
        );
        if run.report["backlog"] == 0 && applied >= points as u64 {
            break;
        }
    }
    if applied != points as u64 {
        bail!("the runs applied {applied} points, not {points}");
    }
    Ok(())
}
