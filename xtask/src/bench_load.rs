//! `cargo xtask bench-load`: the load workloads of docs/PERFORMANCE.md
//! ("Load workloads") against the local stack with production's defaults,
//! the cron run by hand every minute, as Cloudflare runs it.
//!
//! - **W1, "10k"**: 10,000 series, each a point every 10 s, in OTLP
//!   requests of 1,000 points, one a second; and 500 spans a second over 50
//!   operations, one traces request a second.
//! - **W2, "burst"**: 20 requests a second of 1,000 points over 1,000
//!   series for 3 minutes, then runs until the backlog is drained.
//!
//! It prints per run the rollup's own report (archives, points, lag, D1
//! rows read and written) and the rollup's workerd CPU; then the figures
//! of issue #11's targets 1 and 2 and a modelled monthly bill for W1 at
//! the published prices. Locally D1 (SQLite) runs inside the rollup's
//! workerd process, so the CPU figures include it: an upper bound.
//!
//! What the local runtime cannot count (Analytics Engine data points, the
//! queue messages and their sizes) comes from ingest's own export code run
//! natively on the same requests.

use crate::bench::{fresh_stack, last_run, run_cron, send, settle, workerd_cpu};
use crate::stack::{self, Deliveries, Stack, Urls};
use crate::{root, step};
use anyhow::{bail, Context, Result};
use prost::Message;
use proto::fixtures::{load_request, spans_request, LOAD_POINTS_PER_REQUEST, W1_SERIES};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

// Its own ports: bench-query has 40,000.
const PORT_OFFSET: u16 = 50_000;
/// W1's spans a second, over this many operations.
const W1_SPANS: usize = 500;
const W1_SPAN_OPERATIONS: usize = 50;
/// W2: requests a second over this many series, for this long.
const W2_RATE: u64 = 20;
const W2_SERIES: usize = 1000;
const W2_SECONDS: u64 = 180;
/// Runs at the start of W1 that are not steady state: the first creates
/// every series' catalog row.
const WARM_UP_RUNS: usize = 2;
const MINUTES_PER_MONTH: f64 = 30.0 * 24.0 * 60.0;

/// One cron run as the benchmark saw it.
struct Run {
    wall_s: f64,
    cpu_s: f64,
    /// Age of the newest point in D1 when the run ended: under steady load,
    /// what a dashboard lags behind the senders (queue wait included, which
    /// the rollup's own `lag_ms`, counted from archives, does not see).
    staleness_s: f64,
    report: serde_json::Value,
}

impl Run {
    fn n(&self, path: &[&str]) -> f64 {
        let mut v = &self.report;
        for p in path {
            v = &v[*p];
        }
        v.as_f64().unwrap_or(0.0)
    }
}

fn cron(agent: &ureq::Agent, stack: &Stack, group: u32, state: &std::path::Path) -> Result<Run> {
    let before = workerd_cpu(group)?;
    let wall_s = run_cron(agent, &stack.urls)?;
    // The run answers when it is done; what its isolate does after is not its.
    std::thread::sleep(Duration::from_millis(300));
    let cpu_s = workerd_cpu(group)? - before;
    let report = last_run(agent, &stack.urls)?;
    let newest_ms = d1_number(state, "SELECT MAX(last_time_ms) AS n FROM aggregates WHERE resolution = 3600")?;
    let finished_ms = report["finished_ms"].as_f64().unwrap_or(0.0);
    let staleness_s = if newest_ms > 0.0 { (finished_ms - newest_ms).max(0.0) / 1000.0 } else { 0.0 };
    let run = Run { wall_s, cpu_s, staleness_s, report };
    eprintln!(
        "  run: {} archives, {} points, lag {:.0} s, newest point {:.0} s old, backlog {}, D1 {} rows read / {} written, {:.2} s wall, {:.2} s workerd CPU{}",
        run.report["archives"],
        run.report["points"],
        run.n(&["lag_ms"]) / 1000.0,
        run.staleness_s,
        run.report["backlog"],
        run.report["d1"]["rows_read"],
        run.report["d1"]["rows_written"],
        run.wall_s,
        run.cpu_s,
        if run.report["stopped_by"].is_null() { String::new() } else { format!(", stopped by {}", run.report["stopped_by"]) }
    );
    Ok(run)
}

/// What the load sender did.
#[derive(Default)]
struct Sent {
    metrics_requests: u64,
    traces_requests: u64,
    /// Seconds in which a sender thread could not send its share on time
    /// (the most of any thread).
    late_seconds: u64,
}

/// Sends, every second for `seconds`, `rate` metrics requests over
/// `series` (and with `spans`, one traces request), while the caller runs
/// the cron; stops early if `stop` is set. The requests of a second go out
/// from up to 8 threads at once, as many exporters would send them: one
/// connection sends about 7 requests a second to the local stack.
fn load(urls: &Urls, rate: u64, series: usize, spans: bool, seconds: u64, start_ns: u64, stop: Arc<AtomicBool>) -> Result<Sent> {
    let threads = rate.clamp(1, 8);
    let began = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|lane| {
            let (urls, stop) = (urls.clone(), stop.clone());
            std::thread::spawn(move || -> Result<Sent> {
                let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(60)).build();
                let metrics_url = format!("{}/v1/metrics", urls.ingest);
                let traces_url = format!("{}/v1/traces", urls.ingest);
                let mut sent = Sent::default();
                for second in 0..seconds {
                    if stop.load(Ordering::Relaxed) || stack::stop_requested() {
                        break;
                    }
                    let now_ns = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos() as u64;
                    for request in (second * rate + lane..(second + 1) * rate).step_by(threads as usize) {
                        let body = load_request(request, series, now_ns, start_ns).encode_to_vec();
                        send(&agent, &metrics_url, "application/x-protobuf", None, &body, 200)?;
                        sent.metrics_requests += 1;
                    }
                    if spans && lane == 0 {
                        let body = spans_request(W1_SPANS, W1_SPAN_OPERATIONS, now_ns).encode_to_vec();
                        send(&agent, &traces_url, "application/x-protobuf", None, &body, 200)?;
                        sent.traces_requests += 1;
                    }
                    match Duration::from_secs(second + 1).checked_sub(began.elapsed()) {
                        Some(wait) => std::thread::sleep(wait),
                        None => sent.late_seconds += 1,
                    }
                }
                Ok(sent)
            })
        })
        .collect();
    let mut all = Sent::default();
    for h in handles {
        let sent = h.join().map_err(|_| anyhow::anyhow!("a load sender panicked"))??;
        all.metrics_requests += sent.metrics_requests;
        all.traces_requests += sent.traces_requests;
        all.late_seconds = all.late_seconds.max(sent.late_seconds);
    }
    Ok(all)
}

/// One number (a column `n`) from the local D1 database.
fn d1_number(state: &std::path::Path, sql: &str) -> Result<f64> {
    let rows = stack::d1_query(&root(), state, sql)?;
    Ok(rows.first().and_then(|r| r["n"].as_f64()).unwrap_or(0.0))
}

/// What one request costs on the queue and in Analytics Engine, from
/// ingest's export code run natively: (queue operations, data points).
fn per_request(signal: ingest::export::Signal, body: &[u8]) -> Result<(f64, f64)> {
    let ctx = ingest::export::Context { tenant: stack::DEV_TENANT, now_unix_nano: 1_800_000_000_000_000_000, seed: 7, analytics_one_in: 1 };
    let accepted =
        ingest::export::export(signal, &ctx, body, ingest::body::Encoding::Protobuf).map_err(|e| anyhow::anyhow!("export: {e}"))?;
    // Each 64 KB of a message is written, read and deleted once.
    let queue_ops: usize = accepted.messages.iter().map(|m| 3 * m.len().div_ceil(64 * 1024)).sum();
    // The context writes for every request; deployed, one in n does.
    Ok((queue_ops as f64, accepted.data_points.len() as f64 / f64::from(deployed_analytics_one_in()?)))
}

/// wrangler.toml's `ANALYTICS_ONE_IN` for ingest, read by ingest's own rule.
fn deployed_analytics_one_in() -> Result<u32> {
    let text = std::fs::read_to_string(root().join("wrangler.toml"))?;
    let doc: toml_edit::DocumentMut = text.parse()?;
    let var = doc["env"]["ingest"]["vars"].get(ingest::config::ANALYTICS_ONE_IN).and_then(|v| v.as_str()).map(str::to_owned);
    ingest::config::analytics_one_in(var).map_err(|e| anyhow::anyhow!("{e}"))
}

pub fn run(minutes: u64, only: Option<&str>) -> Result<()> {
    if !matches!(only, None | Some("w1") | Some("w2")) {
        bail!("--only takes w1 or w2");
    }
    if only != Some("w2") {
        w1(minutes.max(WARM_UP_RUNS as u64 + 2))?;
    }
    if only != Some("w1") {
        w2()?;
    }
    Ok(())
}

fn w1(minutes: u64) -> Result<()> {
    let stack = fresh_stack("bench-load", PORT_OFFSET, Vec::new(), Deliveries::AsDeployed)?;
    let state = root().join("target/bench-load/state");
    let rollup = stack.group_of("rollup").context("the rollup process")?;
    let ingest = stack.group_of("ingest").context("the ingest process")?;
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(900)).build();
    cron(&agent, &stack, rollup, &state)?;

    step(&format!("W1: {W1_SERIES} series, 1 request/s of {LOAD_POINTS_PER_REQUEST} points and {W1_SPANS} spans/s, {minutes} minutes"));
    let start_ns = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos() as u64;
    let ingest_cpu_before = workerd_cpu(ingest)?;
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (urls, stop) = (stack.urls.clone(), stop.clone());
        // A few seconds past the last minute, so that its run sees load to the end.
        std::thread::spawn(move || load(&urls, 1, W1_SERIES, true, minutes * 60 + 5, start_ns, stop))
    };
    let began = Instant::now();
    let mut runs = Vec::new();
    for minute in 1..=minutes {
        let at = Duration::from_secs(minute * 60);
        while began.elapsed() < at {
            if sender.is_finished() || stack::stop_requested() {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        // Ended early: failed or interrupted (join below says which).
        if sender.is_finished() {
            break;
        }
        runs.push(cron(&agent, &stack, rollup, &state)?);
    }
    stop.store(true, Ordering::Relaxed);
    let sent = sender.join().map_err(|_| anyhow::anyhow!("the load sender panicked"))??;
    std::thread::sleep(Duration::from_secs(3));
    let ingest_cpu = workerd_cpu(ingest)? - ingest_cpu_before;
    let requests = (sent.metrics_requests + sent.traces_requests) as f64;

    let steady: Vec<&Run> = runs.iter().skip(WARM_UP_RUNS).collect();
    if steady.is_empty() {
        bail!("no steady-state run: give more --minutes");
    }
    let mean = |f: &dyn Fn(&Run) -> f64| steady.iter().map(|r| f(r)).sum::<f64>() / steady.len() as f64;
    let max = |f: &dyn Fn(&Run) -> f64| steady.iter().map(|r| f(r)).fold(0.0, f64::max);
    let series = d1_number(&state, "SELECT COUNT(*) AS n FROM series")?;
    // Batch ids: a row per commit and hour of data in ledger_batches (no
    // index), and, before migration 0009, a row and an index entry per
    // batch in processed_batches.
    let dedup_rows = d1_number(&state, "SELECT COUNT(*) AS n FROM ledger_batches")?
        + 2.0 * d1_number(&state, "SELECT COUNT(*) AS n FROM processed_batches")?;
    let written = mean(&|r| r.n(&["d1", "rows_written"]));
    let read = mean(&|r| r.n(&["d1", "rows_read"]));
    let archives = mean(&|r| r.n(&["archives"]));
    let cpu_per_run = mean(&|r| r.cpu_s);
    let dedup_rows_per_request = dedup_rows / requests;
    let ingest_cpu_ms = 1000.0 * ingest_cpu / requests;

    println!("\n### W1 (\"10k\"), {} minutes, {} steady-state runs\n", runs.len(), steady.len());
    println!("| figure | target | measured |\n| --- | --- | --- |");
    println!(
        "| D1 rows written per active series per hour | ≤ 2 | {:.1} ({written:.0} a run over {series} series) |",
        written * 60.0 / series
    );
    println!("| D1 rows per ingest request for dedup | ≤ 0.02 | {dedup_rows_per_request:.2} |");
    println!("| D1 rows read per run | | {read:.0} |");
    println!("| lag at the end of a run: oldest archive left (most) | ≤ 120 s | {:.0} s |", max(&|r| r.n(&["lag_ms"])) / 1000.0);
    println!("| age of the newest point applied at the end of a run (most) | ≤ 120 s | {:.0} s |", max(&|r| r.staleness_s));
    println!("| rollup workerd CPU per run (mean / most) | ≤ 5 s | {cpu_per_run:.2} s / {:.2} s |", max(&|r| r.cpu_s));
    println!("| archives per run | | {archives:.1} |");
    println!("| ingest workerd CPU per request (queue consumer included) | | {ingest_cpu_ms:.1} ms |");
    println!("| sender seconds late | 0 | {} |", sent.late_seconds);

    // The modelled month: W1's rates, steady state.
    let now_ns = 1_800_000_000_000_000_000;
    let (metrics_ops, metrics_points) =
        per_request(ingest::export::Signal::Metrics, &load_request(0, W1_SERIES, now_ns, now_ns).encode_to_vec())?;
    let (traces_ops, traces_points) =
        per_request(ingest::export::Signal::Traces, &spans_request(W1_SPANS, W1_SPAN_OPERATIONS, now_ns).encode_to_vec())?;
    let per_minute_requests = 60.0 * 2.0; // one metrics and one traces request a second
    let month = |per_minute: f64| per_minute * MINUTES_PER_MONTH;
    let deliveries = month(archives);
    let lines = [
        // (item, quantity a month, included, price per unit beyond)
        ("Workers requests (ingest, queue deliveries, cron)", month(per_minute_requests + archives + 1.0), 10e6, 0.30 / 1e6),
        ("Workers CPU-ms", month(per_minute_requests * ingest_cpu_ms + 1000.0 * cpu_per_run), 30e6, 0.02 / 1e6),
        ("Queues operations", month(60.0 * (metrics_ops + traces_ops)), 1e6, 0.40 / 1e6),
        ("R2 class A (archive puts, listings)", deliveries + month(1.0), 1e6, 4.50 / 1e6),
        ("R2 class B (archive gets)", deliveries, 10e6, 0.36 / 1e6),
        ("D1 rows written", month(written), 50e6, 1.00 / 1e6),
        ("D1 rows read", month(read), 25e9, 0.001 / 1e6),
        ("Analytics Engine data points", month(60.0 * (metrics_points + traces_points)), 10e6, 0.25 / 1e6),
    ];
    println!("\n| W1 a month (30 days) | quantity | included | cost beyond |\n| --- | --- | --- | --- |");
    let mut total = 5.0;
    for (item, quantity, included, price) in lines {
        let cost = (quantity - included).max(0.0) * price;
        total += cost;
        println!("| {item} | {} | {} | ${cost:.2} |", human(quantity), human(included));
    }
    println!("| Workers Paid plan | | | $5.00 |\n| **total** | | | **${total:.2}** (goal ≤ $20) |");
    println!(
        "\nModel inputs: Workers CPU is workerd's CPU (D1 included, an upper bound); the CPU time billed is \
         the Worker's own. Queue operations and Analytics Engine points per request come from ingest's export \
         code on the same requests ({metrics_ops} and {traces_ops} operations, {metrics_points} and {traces_points} \
         data points per metrics and traces request, one request in ANALYTICS_ONE_IN writing). D1 storage and R2 \
         storage are left out."
    );
    drop(stack);
    Ok(())
}

fn w2() -> Result<()> {
    let stack = fresh_stack("bench-load", PORT_OFFSET, Vec::new(), Deliveries::AsDeployed)?;
    let state = root().join("target/bench-load/state");
    let rollup = stack.group_of("rollup").context("the rollup process")?;
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(900)).build();
    cron(&agent, &stack, rollup, &state)?;
    step(&format!("W2: {W2_RATE} requests/s of {LOAD_POINTS_PER_REQUEST} points over {W2_SERIES} series for {W2_SECONDS} s"));
    let start_ns = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos() as u64;
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (urls, stop) = (stack.urls.clone(), stop.clone());
        std::thread::spawn(move || load(&urls, W2_RATE, W2_SERIES, false, W2_SECONDS, start_ns, stop))
    };
    let began = Instant::now();
    let mut minute = 1;
    let mut during = Vec::new();
    while !sender.is_finished() {
        if began.elapsed() >= Duration::from_secs(minute * 60) {
            during.push(cron(&agent, &stack, rollup, &state)?);
            minute += 1;
        }
        if stack::stop_requested() {
            stop.store(true, Ordering::Relaxed);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let sent = sender.join().map_err(|_| anyhow::anyhow!("the load sender panicked"))??;
    let points = sent.metrics_requests * LOAD_POINTS_PER_REQUEST as u64;
    eprintln!("  sent {points} points ({} late seconds); draining", sent.late_seconds);
    // Let the queue consumer write the last archives, then run once a
    // minute, as the cron would, until a run ends with no backlog. (Applied
    // points fall short of those sent: a cumulative point no newer than its
    // series' last one adds nothing, and W2's 20 requests a second repeat
    // timestamps.)
    settle(stack.group_of("ingest").context("the ingest process")?)?;
    let applied_during: f64 = during.iter().map(|r| r.n(&["points"])).sum();
    let mut applied = applied_during;
    let mut after = 0;
    let drained = loop {
        after += 1;
        let run = cron(&agent, &stack, rollup, &state)?;
        applied += run.n(&["points"]);
        if run.n(&["backlog"]) == 0.0 && run.report["stopped_by"].is_null() {
            break true;
        }
        if after == 10 {
            break false;
        }
        std::thread::sleep(Duration::from_secs(60).saturating_sub(Duration::from_secs_f64(run.wall_s)));
    };
    println!("\n### W2 (\"burst\")\n");
    println!("| figure | target | measured |\n| --- | --- | --- |");
    println!("| points sent | | {points} ({} late seconds) |", sent.late_seconds);
    println!("| points applied by runs during the load | | {applied_during:.0} |");
    println!(
        "| runs after the load stopped until the backlog was drained | ≤ 2 | {} |",
        if drained { after.to_string() } else { format!("more than {after}") }
    );
    println!("| points applied in all (of {points} sent) | | {applied:.0} |");
    drop(stack);
    Ok(())
}

/// 1234567 → "1.23 M".
fn human(n: f64) -> String {
    match n {
        n if n >= 1e9 => format!("{:.2} B", n / 1e9),
        n if n >= 1e6 => format!("{:.2} M", n / 1e6),
        n if n >= 1e3 => format!("{:.1} k", n / 1e3),
        n => format!("{n:.0}"),
    }
}
