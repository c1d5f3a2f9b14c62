//! The rollup core natively: an archive of 100,000 points decoded,
//! accumulated into per-series buckets at the three resolutions and planned
//! as D1 writes (histograms serialized), into empty buckets and merged into
//! stored ones. Before the timings it prints the stored bytes per
//! series-minute for a log-normal latency distribution.
//! Run with `cargo bench -p rollup`; figures in docs/PERFORMANCE.md.

use criterion::{BatchSize, Criterion, Throughput};
use prost::Message;
use proto::aggregate::Aggregate;
use proto::fixtures::latencies;
use proto::point::{Batch, Point, Value};
use rollup::chunk::Chunks;
use rollup::pending::Pending;
use rollup::plan::{self, Stored, StoredRows, Write};
use rollup::prepare::{self, Target};
use rollup::series;
use std::collections::HashMap;

const NOW: u64 = 1_800_000_000_000_000_000;
const REQUESTS: usize = 100;
const POINTS_PER_REQUEST: usize = 1000;

/// An archive of `REQUESTS` ingest requests of the benchmark fixture (1,000
/// points over 20 metrics and 1,000 series), one second apart.
fn archive() -> Vec<u8> {
    let batches: Vec<Vec<u8>> = (0..REQUESTS)
        .map(|i| {
            let t = NOW - (REQUESTS - i) as u64 * 1_000_000_000;
            let req = proto::fixtures::metrics_request(POINTS_PER_REQUEST, t);
            let points = proto::normalize::metrics::normalize(req, NOW).points();
            Batch { tenant: "bench".into(), batch_id: format!("b{i}"), points, ..Default::default() }.encode_to_vec()
        })
        .collect();
    proto::archive::encode(&batches.iter().map(Vec::as_slice).collect::<Vec<_>>())
}

/// What the rollup does with one archive between its D1 reads and writes:
/// read chunk by chunk, keyed, accumulated, folded into pending work, its
/// minutes encoded as head parts and its hours and days planned.
fn aggregate(bytes: &[u8], stored: StoredRows) -> Vec<Write> {
    let mut pending = Pending::default();
    for chunk in Chunks::new(bytes) {
        let chunk = chunk.expect("archive");
        let keyed = series::key(&chunk.batches);
        let prepared = prepare::prepare(&keyed, &Target::own(&keyed), &HashMap::new());
        let ids: HashMap<u32, i64> = (0..keyed.series.len() as u32).map(|i| (i, i64::from(i))).collect();
        for (i, s) in keyed.series.iter().enumerate() {
            pending.name(i as i64, s.tenant, s.metric);
        }
        pending.fold(prepared, &ids, Vec::new()).expect("fold");
    }
    // The minutes become head parts; the hours and days are merged as rows.
    let mut series = std::mem::take(&mut pending.series);
    let mut head_bytes = 0;
    rollup::head::parts(&mut series, &pending.names, |p| head_bytes += p.body.len()).expect("head parts");
    assert!(head_bytes > 0);
    plan::writes(series, stored).collect::<Result<_, _>>().expect("plan")
}

/// Bytes of the samples blob of one bucket holding `values`.
fn blob_bytes(values: &[f64]) -> usize {
    let mut a = Aggregate::empty(true, "ms");
    for &v in values {
        a.add_point(&Point { time_unix_nano: NOW, value: Some(Value::Gauge(v)), ..Default::default() });
    }
    a.to_row().samples.map_or(0, |s| s.len())
}

fn storage_report() {
    // The other columns of a row (ids, count, sum, min, max, last, version)
    // take about 60 bytes in SQLite's record format.
    const COLUMNS: usize = 60;
    println!("stored bytes per series-minute, log-normal latencies (median 40 ms, sigma 1.2):");
    println!("| samples per minute | 1m row | 1h row | 1d row | per series-minute, all resolutions |");
    println!("| --- | --- | --- | --- | --- |");
    for per_minute in [60usize, 600, 6000] {
        let minute = blob_bytes(&latencies(per_minute, 1)) + COLUMNS;
        let hour = blob_bytes(&latencies(per_minute * 60, 2)) + COLUMNS;
        let day = blob_bytes(&latencies((per_minute * 1440).min(2_000_000), 3)) + COLUMNS;
        let amortized = minute as f64 + hour as f64 / 60.0 + day as f64 / 1440.0;
        println!("| {per_minute} | {minute} B | {hour} B | {day} B | {amortized:.0} B |");
    }
    println!();
    // The hour-block layout (proto::aggregate::block): an hour's 60 minutes
    // in one block beside the hour's merge (a row's samples blob), and the
    // day row as above.
    println!("the same in hour blocks (one row per series and hour):");
    println!("| samples per minute | hour block | hour merge | 1d row | per series-minute, all resolutions |");
    println!("| --- | --- | --- | --- | --- |");
    for per_minute in [60usize, 600, 6000] {
        let hour_start = (NOW / 1_000_000_000) as i64 / 3600 * 3600;
        let minutes: Vec<(i64, Aggregate)> = (0..60)
            .map(|m| {
                let start = hour_start + m * 60;
                (start, aggregate_of(&latencies(per_minute, 100 + m as u64), start))
            })
            .collect();
        let mut merge = Aggregate::empty(true, "ms");
        minutes.iter().for_each(|(_, a)| merge.merge(a));
        let refs: Vec<(i64, &Aggregate)> = minutes.iter().map(|(s, a)| (*s, a)).collect();
        let block = proto::aggregate::block::encode(hour_start, &refs).expect("an hour block").len() + COLUMNS;
        let hour = merge.to_row().samples.map_or(0, |s| s.len()) + COLUMNS;
        let day = blob_bytes(&latencies((per_minute * 1440).min(2_000_000), 3)) + COLUMNS;
        let amortized = block as f64 / 60.0 + hour as f64 / 60.0 + day as f64 / 1440.0;
        println!("| {per_minute} | {block} B | {hour} B | {day} B | {amortized:.0} B |");
    }
    println!();
}

/// One minute's aggregate of `values`, spread over the minute from `start`.
fn aggregate_of(values: &[f64], start: i64) -> Aggregate {
    let mut a = Aggregate::empty(true, "ms");
    for (i, &v) in values.iter().enumerate() {
        let t = (start as u64 * 1000 + (i as u64 * 997) % 60_000) * 1_000_000;
        a.add_point(&Point { time_unix_nano: t, value: Some(Value::Gauge(v)), ..Default::default() });
    }
    a
}

fn main() {
    storage_report();
    let bytes = archive();
    let fresh = aggregate(&bytes, Vec::new());
    // The same buckets already stored: every write becomes a read-merge-write.
    let stored: StoredRows = fresh
        .iter()
        .filter_map(|w| match w {
            Write::Insert { series_id, slot, row } => Some(((*series_id, *slot), Stored { row: row.clone(), version: 1 })),
            Write::Update { .. } => None,
        })
        .collect();

    let mut c = Criterion::default().configure_from_args().sample_size(20);
    let mut g = c.benchmark_group("rollup");
    g.throughput(Throughput::Elements((REQUESTS * POINTS_PER_REQUEST) as u64));
    g.bench_function("archive_100k_points_into_new_buckets", |b| {
        b.iter_batched(Vec::new, |none| aggregate(&bytes, none).len(), BatchSize::SmallInput)
    });
    g.bench_function("archive_100k_points_merged_into_stored_buckets", |b| {
        // The stored rows are copied outside the timing: a run reads them from D1.
        b.iter_batched(|| stored.clone(), |stored| aggregate(&bytes, stored).len(), BatchSize::SmallInput)
    });
    g.finish();
    c.final_summary();
}
