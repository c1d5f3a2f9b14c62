//! The query core natively, on what D1 returns: the stored rows of
//! log-normal latency histograms (60 samples a minute) decoded into
//! aggregates and evaluated as `api::evaluate` does once D1 has answered.
//! Two queries from issue #5: the p99 over 7 days of one series (an instant
//! query over 10,080 minute buckets, and over the 168 hour buckets that the
//! default retention makes it read), and a 24-hour `query_range` at a
//! 1-minute step, per series and merged across series. Each is also timed
//! decoding its rows only. Before the timings it prints what each query
//! reads and the heap it peaks at.
//! Run with `cargo bench -p dashboard-api`; figures in docs/PERFORMANCE.md.

use criterion::{Criterion, SamplingMode, Throughput};
use dashboard_api::config::Kept;
use dashboard_api::query::select::Selection;
use dashboard_api::query::series::{labels_from_json, SeriesData};
use dashboard_api::query::{self, eval, plan, Times};
use proto::aggregate::{Aggregate, Row};
use proto::fixtures::latencies;
use proto::heap::peak_of;
use proto::point::{Distribution, Kind, Point, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A minute-aligned "now" that is not on an hour, so that a 7-day window
/// ending at it is tiled by minute buckets only (an hour-aligned end would
/// let the hour buckets serve it).
const END: i64 = 1_800_000_000 + 37 * 60;
const DAY: i64 = 86_400;
const NAME: &str = "lat";
/// Series of the range query, as issue #5 asks.
const RANGE_SERIES: usize = 100;
/// Heap the range query's decoded rows may take here (24 GiB, shared); with
/// more it reads a tenth of the series. Both range queries scale linearly in
/// the number of series.
const HEAP_BUDGET: usize = 4 << 30;

/// Counts live heap bytes so that the report can give each query's peak:
/// the Worker's isolate has 128 MB, its wasm included.
#[global_allocator]
static HEAP: proto::heap::Counting = proto::heap::Counting;

/// One minute of a latency series as the rollup aggregates it: 60 requests,
/// one a second, each an exact sample (as spans give), drawn from the
/// distribution of rollup's stored-bytes figures so that they hold here.
fn minute(series: usize, start: i64) -> Aggregate {
    let mut a = Aggregate::empty(true, "ms");
    let seed = ((series as u64) << 40) ^ start as u64;
    for (i, v) in latencies(60, seed).into_iter().enumerate() {
        let d = Distribution { count: 1, sum: v, min: Some(v), max: Some(v), values: vec![v], counts: vec![1], ..Default::default() };
        let time_unix_nano = (start as u64 + i as u64) * 1_000_000_000;
        a.add_point(&Point { time_unix_nano, value: Some(Value::Distribution(d)), ..Default::default() });
    }
    a
}

/// What D1 answers for one selection: the catalog's matching series (id and
/// labels JSON) and the aggregate rows (series id, bucket start, row) in
/// `ORDER BY bucket_start`, as `store::fetch` reads them.
struct Answer {
    series: Vec<(i64, String)>,
    rows: Vec<(i64, i64, Row)>,
}

impl Answer {
    fn blob_bytes(&self) -> usize {
        self.rows.iter().map(|(_, _, r)| r.samples.as_ref().map_or(0, Vec::len)).sum()
    }
}

fn labels_json(series: usize) -> String {
    format!(r#"{{"service.name":"api","http.route":"/r{series}"}}"#)
}

/// One series over the 7 days before `END`: its minute rows, and the hour
/// rows the rollup stores from the same points (the last hour still filling).
fn week() -> (Answer, Answer) {
    let from = END - 7 * DAY;
    let mut minutes = Vec::new();
    let mut hours: Vec<(i64, Aggregate)> = Vec::new();
    for start in (from..END).step_by(60) {
        let a = minute(0, start);
        let hour = start - start.rem_euclid(3600);
        match hours.last_mut() {
            Some((h, acc)) if *h == hour => acc.merge(&a),
            _ => hours.push((hour, a.clone())),
        }
        minutes.push((1, start, a.to_row()));
    }
    // The hour that began before the window starts outside it; D1's
    // `bucket_start >= from` leaves it out.
    let hours = hours.into_iter().filter(|(h, _)| *h >= from).map(|(h, a)| (1, h, a.to_row())).collect();
    let series = vec![(1, labels_json(0))];
    (Answer { series: series.clone(), rows: minutes }, Answer { series, rows: hours })
}

/// Heap one decoded minute row holds.
fn decoded_row_bytes() -> usize {
    let row = minute(0, END).to_row();
    let (agg, held) = proto::heap::held_by(|| Aggregate::from_row(&row).expect("stored row"));
    drop(agg);
    held.max(0) as usize
}

/// `n` series over the day before `END` plus the minute the first step's
/// window reads: 1,441 minute rows each.
fn day(n: usize) -> Answer {
    let series = (0..n).map(|i| (i as i64 + 1, labels_json(i))).collect();
    let mut rows = Vec::new();
    for start in (END - DAY - 60..END).step_by(60) {
        for i in 0..n {
            rows.push((i as i64 + 1, start, minute(i, start).to_row()));
        }
    }
    Answer { series, rows }
}

/// What `store::fetch` does with D1's answer: series from the catalog rows,
/// each aggregate row decoded and appended to its series.
fn fetch(sel: &Selection, answer: &Answer) -> Vec<SeriesData> {
    let mut series: Vec<(i64, SeriesData)> = answer
        .series
        .iter()
        .filter_map(|(id, json)| {
            let labels = labels_from_json(json);
            let field = sel.field_of(NAME);
            sel.matches(&labels)
                .then(|| (*id, SeriesData { prom_name: sel.name.clone(), labels, kind: Kind::Distribution, field, buckets: Vec::new() }))
        })
        .collect();
    let index: HashMap<i64, usize> = series.iter().enumerate().map(|(i, (id, _))| (*id, i)).collect();
    for (series_id, bucket_start, row) in &answer.rows {
        let agg = Aggregate::from_row(row).expect("stored row");
        if let Some(&i) = index.get(series_id) {
            series[i].1.buckets.push((*bucket_start, agg));
        }
    }
    series.into_iter().map(|(_, s)| s).collect()
}

/// The pure part of `api::evaluate`: parse, list the selections, pick the
/// resolution, "fetch" (decode `answer`), evaluate at every time. The
/// resolution is returned so that setup can check it read what it built.
fn evaluate(q: &str, times: Times, kept: &Kept, answer: &Answer) -> (i64, Vec<(f64, eval::Value)>) {
    let expr = query::parse(q).expect("query");
    let plan = plan::lower(&expr).expect("plan");
    let selections = plan.selections;
    let default = times.default_window();
    let windows: Vec<f64> = selections.iter().map(|s| s.range_s.unwrap_or(default)).collect();
    let resolution = times.resolution(&windows, kept, END as f64);
    let fetched: Vec<_> = selections
        .into_iter()
        .map(|sel| {
            let series = fetch(&sel, answer);
            (sel, series)
        })
        .collect();
    let env = eval::Env { fetched: &fetched, default_window: default, resolution };
    let steps = times.each().into_iter().map(|t| (t, eval::eval(&plan.root, t, &env).expect("eval"))).collect();
    (resolution, steps)
}

fn decode_only(answer: &Answer) -> Vec<Aggregate> {
    answer.rows.iter().map(|(_, _, row)| Aggregate::from_row(row).expect("stored row")).collect()
}

/// One benchmark case: a query, when it is evaluated, the retention it plans
/// with, and the resolution that makes it read the rows built for it.
struct Case<'a> {
    name: String,
    query: &'static str,
    times: Times,
    kept: Kept,
    resolution: i64,
    answer: &'a Answer,
}

/// Prints what each query reads and the heap it peaks at, and returns how
/// long each took, to size the measurements.
fn report(cases: &[Case<'_>]) -> Vec<Duration> {
    println!("what each query reads, and the heap it peaks at (one run each, before the timings):");
    println!("| query | rows | samples blobs | peak heap | peak heap per row | first value |");
    println!("| --- | --- | --- | --- | --- | --- |");
    let mut took = Vec::new();
    for c in cases {
        let clock = Instant::now();
        let ((resolution, steps), peak) = peak_of(|| evaluate(c.query, c.times, &c.kept, c.answer));
        took.push(clock.elapsed());
        assert_eq!(resolution, c.resolution, "{}: read another resolution than the rows built", c.name);
        let first = match &steps[0].1 {
            eval::Value::Vector(v) => v.first().map_or(f64::NAN, |s| s.value),
            eval::Value::Scalar(v) => *v,
        };
        let rows = c.answer.rows.len();
        println!(
            "| {} | {rows} | {:.0} KB | {:.0} MB | {:.0} KB | {first:.1} ms |",
            c.name,
            c.answer.blob_bytes() as f64 / 1e3,
            peak as f64 / 1e6,
            peak as f64 / rows as f64 / 1e3,
        );
    }
    println!();
    took
}

/// Ten samples of at least one iteration each, with room to spare, so that
/// criterion neither warns nor runs a slow query a hundred times.
fn measurement_time(one: Duration) -> Duration {
    (one * 12).max(Duration::from_secs(5))
}

fn main() {
    let (week_minutes, week_hours) = week();
    let per_row = decoded_row_bytes();
    let n = if RANGE_SERIES * 1441 * per_row > HEAP_BUDGET { RANGE_SERIES / 10 } else { RANGE_SERIES };
    println!("one decoded minute row holds {per_row} bytes of heap; the range query reads {n} series\n");
    let day = day(n);
    let at_end = Times::instant(END as f64);
    let last_day = Times::range((END - DAY) as f64, END as f64, 60.0).expect("range");
    // Minute buckets serve a 7-day window only if they are kept that long;
    // with the default 2 days the hours serve it.
    let minutes_kept_8_days = Kept { minute_days: 8, ..Kept::default() };
    let p99_week = r#"lat{quantile="0.99"}[7d]"#;
    let case = |name: String, query, times, kept, resolution, answer| Case { name, query, times, kept, resolution, answer };
    let cases = [
        case("p99_7d_10080_minute_buckets".into(), p99_week, at_end, minutes_kept_8_days, 60, &week_minutes),
        case("p99_7d_168_hour_buckets".into(), p99_week, at_end, Kept::default(), 3600, &week_hours),
        case(format!("range_24h_step_1m_{n}_series_p99_each"), r#"lat{quantile="0.99"}"#, last_day, Kept::default(), 60, &day),
        case(format!("range_24h_step_1m_{n}_series_p99_of_sum"), "histogram_quantile(0.99, sum(lat))", last_day, Kept::default(), 60, &day),
    ];
    let took = report(&cases);

    let mut c = Criterion::default().configure_from_args().sample_size(10);
    // Iterations of up to seconds: ten samples of one or a few iterations
    // each rather than criterion's linear ramp of 55.
    let mut g = c.benchmark_group("query");
    g.sampling_mode(SamplingMode::Flat).warm_up_time(Duration::from_secs(1));
    for (case, one) in cases.iter().zip(took) {
        g.throughput(Throughput::Elements(case.answer.rows.len() as u64)).measurement_time(measurement_time(one));
        g.bench_function(&case.name, |b| b.iter(|| evaluate(case.query, case.times, &case.kept, case.answer).1.len()));
    }
    let decodes = [
        ("decode_only_10080_minute_rows".to_string(), &week_minutes),
        ("decode_only_168_hour_rows".to_string(), &week_hours),
        (format!("decode_only_{}_minute_rows_{n}_series", day.rows.len()), &day),
    ];
    for (name, answer) in decodes {
        let clock = Instant::now();
        decode_only(answer);
        g.throughput(Throughput::Elements(answer.rows.len() as u64)).measurement_time(measurement_time(clock.elapsed()));
        g.bench_function(&name, |b| b.iter(|| decode_only(answer).len()));
    }
    g.finish();
    c.final_summary();
}
