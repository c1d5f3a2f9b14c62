//! `cargo xtask bench-query`: dashboard-api queries in the local runtime,
//! timed (wall, from the client) and charged (workerd CPU of the
//! dashboard-api process, D1 included), answered by evaluation and from the
//! cache.
//!
//! The data goes through ingest and the rollup as production's would:
//! - `bench.week`: one latency series, 10 samples a minute for 7 days and an
//!   hour, read as `bench_week{quantile="0.99"}[7d]`: the p99 over 10,080
//!   minute histograms;
//! - `bench.day`: 100 series (`route` /r00../r99), 4 samples a minute for 25
//!   hours, read by a 24-hour `query_range` at a 1-minute step (1,441
//!   steps), per series and merged.
//!
//! Both end 20 minutes before the run starts, so the queries are over closed
//! ranges and cacheable: a "miss" request names a time no earlier request
//! named (evaluated, then stored), a "hit" repeats one. Minutes are kept 8
//! days in this stack so the week is read from minute buckets.

use crate::bench::{fresh_stack, send, settle};
use crate::stack::{self, Deliveries, Stack, DEV_READ_KEY};
use crate::{encode, step};
use anyhow::{bail, Context, Result};
use prost::Message;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const PORT_OFFSET: u16 = 40_000;
const WEEK_SAMPLES_PER_MINUTE: u64 = 10;
const DAY_SERIES: usize = 100;
const DAY_SAMPLES_PER_MINUTE: u64 = 4;
/// Requests per measurement; the median of the rounds is reported.
const REQUESTS: usize = 5;
const ROUNDS: usize = 3;

/// Points per ingest request.
const CHUNK: usize = 5000;

/// Sends the gauge points of `metric` labelled `attrs` through ingest.
fn ingest(agent: &ureq::Agent, stack: &Stack, metric: &str, attrs: &[(&str, &str)], points: &[(u64, f64)]) -> Result<()> {
    for chunk in points.chunks(CHUNK) {
        let body = proto::fixtures::gauge_request(metric, attrs, chunk).encode_to_vec();
        send(agent, &format!("{}/v1/metrics", stack.urls.ingest), "application/x-protobuf", None, &body, 200)?;
        if stack::stop_requested() {
            bail!("interrupted");
        }
    }
    Ok(())
}

/// `per_minute` samples in each minute of [from_s, to_s), as (unix nanos, ms).
fn samples(from_s: u64, to_s: u64, per_minute: u64, seed: u64) -> Vec<(u64, f64)> {
    let minutes = (to_s - from_s) / 60;
    let values = proto::fixtures::latencies((minutes * per_minute) as usize, seed);
    values.into_iter().enumerate().map(|(i, v)| ((from_s + i as u64 * 60 / per_minute) * 1_000_000_000, v)).collect()
}

/// Median (wall ms, workerd CPU ms) per request over the rounds, and the
/// body size, of the GETs `path(i)` for i in `requests`.
fn measure(
    agent: &ureq::Agent,
    stack: &Stack,
    group: u32,
    mut path: impl FnMut(usize) -> String,
    want_cache: &str,
) -> Result<(f64, f64, usize)> {
    let (mut walls, mut cpus, mut size) = (Vec::new(), Vec::new(), 0);
    let mut i = 0;
    for _ in 0..ROUNDS {
        let before = settle(group)?;
        let started = Instant::now();
        for _ in 0..REQUESTS {
            let url = format!("{}{}", stack.urls.dashboard_api, path(i));
            i += 1;
            let r = agent.get(&url).set("authorization", &format!("Bearer {DEV_READ_KEY}")).call().with_context(|| format!("GET {url}"))?;
            let cache = r.header("cache-status").unwrap_or("").to_owned();
            let body = r.into_string()?;
            if !cache.ends_with(want_cache) {
                bail!("{url}: Cache-Status {cache:?}, expected {want_cache:?}");
            }
            if !body.contains("\"status\":\"success\"") || body.contains("\"result\":[]") {
                bail!("{url} answered no data: {}", &body[..body.len().min(300)]);
            }
            size = body.len();
        }
        let wall = started.elapsed().as_secs_f64() * 1000.0 / REQUESTS as f64;
        let cpu = (settle(group)? - before) * 1000.0 / REQUESTS as f64;
        walls.push(wall);
        cpus.push(cpu);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    Ok((median(walls), median(cpus), size))
}

pub fn run() -> Result<()> {
    let vars = vec![
        ("rollup", "MAX_POINTS_PER_RUN".into(), "5000000".into()),
        ("rollup", "MAX_ARCHIVES_PER_RUN".into(), "10000".into()),
        ("rollup", "MAX_RUN_MS".into(), "3600000".into()),
        ("rollup", "RETENTION_1M_DAYS".into(), "8".into()),
        ("dashboard-api", "RETENTION_1M_DAYS".into(), "8".into()),
        // The 24-hour range over 100 series reads 144,100 minute buckets,
        // beyond the production budget (dashboard-api's budget.rs): it is
        // measured here as what the budget keeps out of production.
        ("dashboard-api", "MAX_QUERY_BUCKETS".into(), "200000".into()),
    ];
    let stack = fresh_stack("bench-query", PORT_OFFSET, vars, Deliveries::Prompt)?;
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(600)).build();
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let end = now - now % 60 - 1200;
    let (day, hour) = (86_400, 3600);

    step("ingesting 7 days of one series and 25 hours of 100 series");
    let week = samples(end - 7 * day - hour, end, WEEK_SAMPLES_PER_MINUTE, 7);
    ingest(&agent, &stack, "bench.week", &[], &week)?;
    let mut points = week.len();
    for s in 0..DAY_SERIES {
        let route = format!("/r{s:02}");
        let series = samples(end - 25 * hour, end, DAY_SAMPLES_PER_MINUTE, 1000 + s as u64);
        points += series.len();
        ingest(&agent, &stack, "bench.day", &[("route", &route)], &series)?;
    }
    settle(stack.group_of("ingest").context("the ingest process")?)?;
    step(&format!("rolling up {points} points"));
    let r = agent.get(&format!("{}/__scheduled?cron=*+*+*+*+*", stack.urls.rollup)).call().context("running the rollup")?;
    if r.status() != 200 {
        bail!("the rollup run answered {}", r.status());
    }
    let status = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();
    let report: serde_json::Value = serde_json::from_str(
        &status
            .get(&format!("{}/status", stack.urls.rollup))
            .set("authorization", &format!("Bearer {}", crate::stack::DEV_STATUS_KEY))
            .call()?
            .into_string()?,
    )?;
    if report["last_run"]["points"].as_u64() != Some(points as u64) {
        bail!("the rollup applied {} points, not {points}", report["last_run"]["points"]);
    }

    let group = stack.group_of("dashboard-api").context("the dashboard-api process")?;
    // Warm the isolate up.
    agent.get(&format!("{}/", stack.urls.dashboard_api)).call()?;
    let week_q = encode("bench_week{quantile=\"0.99\"}[7d]");
    // Seconds before the end, so that each time is new (a miss) yet the
    // window still holds 10,080 minutes; unaligned, so minutes are read.
    let week_at = |i: usize| format!("/api/v1/query?query={week_q}&time={}", end - 1 - i as u64);
    let per_series = encode("bench_day{quantile=\"0.99\"}");
    let merged = encode("histogram_quantile(0.99, sum(bench_day))");
    // Minutes before the end, so that each range is new yet fully covered.
    let range = |q: &str, i: usize| {
        let to = end - 60 * i as u64;
        format!("/api/v1/query_range?query={q}&start={}&end={to}&step=60", to - day)
    };

    type Case<'a> = (&'a str, Box<dyn Fn(usize) -> String + 'a>);
    let cases: Vec<Case<'_>> = vec![
        ("p99 over 7 days of minute histograms, 1 series (instant query)", Box::new(week_at)),
        ("24 h query_range at 1 min, p99 of each of 100 series", Box::new(|i| range(&per_series, i))),
        ("24 h query_range at 1 min, p99 of the 100 series merged", Box::new(|i| range(&merged, i))),
    ];
    let mut rows = Vec::new();
    for (name, path) in &cases {
        step(name);
        let miss = measure(&agent, &stack, group, path, "fwd=miss; stored")?;
        eprintln!("  evaluated: {:.0} ms wall, {:.0} ms CPU, {} KB", miss.0, miss.1, miss.2 / 1000);
        let hit = measure(&agent, &stack, group, |_| path(0), "hit")?;
        eprintln!("  cached: {:.1} ms wall, {:.1} ms CPU", hit.0, hit.1);
        rows.push((name, miss, hit));
    }
    println!("\n| query | response | evaluated: wall | evaluated: workerd CPU | cached: wall | cached: workerd CPU |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (name, miss, hit) in rows {
        println!("| {name} | {} KB | {:.0} ms | {:.0} ms | {:.1} ms | {:.1} ms |", miss.2 / 1000, miss.0, miss.1, hit.0, hit.1);
    }
    drop(stack);
    Ok(())
}
