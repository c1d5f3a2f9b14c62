//! What one archive makes the rollup hold, measured with a counting
//! allocator: the peak heap of reading an archive chunk by chunk, keying,
//! folding every part into a run's pending work and committing that
//! (merging it with stored rows, planning its writes and encoding their
//! statements' JSON) whenever it is full, over archives built by
//! ingest's own export code from requests at and near the limits.
//!
//! The bound is [`MAX_PEAK`], well inside a Worker's 128 MB, which also
//! holds the wasm code, the JavaScript side of the D1 statements and the
//! archive's compressed bytes. Before chunks and per-series keys, the
//! hostile archive below needed gigabytes: every point's 64 shared labels
//! were copied and serialized to 74 KB of JSON.

use ingest::body::Encoding;
use ingest::export::{export, Context, Signal};
use rollup::chunk::{self, Chunks};
use rollup::pending::Pending;
use rollup::plan::{self, Stored};
use rollup::prepare::{self, Target};
use serde_json::json;
use std::collections::HashMap;

#[global_allocator]
static HEAP: proto::heap::Counting = proto::heap::Counting;

/// The peak heap one archive may take the rollup's core to.
const MAX_PEAK: isize = 48 << 20;

const NOW: u64 = 1_800_000_000_000_000_000;

/// The allocator's counters are global and the tests of one binary run in
/// parallel threads: each test holds this lock, so that one test's peak
/// never includes another's allocations.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn alone() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// An archive as the queue consumer writes it: the concatenated messages
/// ingest made of these OTLP/JSON requests.
fn archive(requests: impl IntoIterator<Item = serde_json::Value>) -> Vec<u8> {
    archive_of(requests.into_iter().map(|r| (r.to_string().into_bytes(), Encoding::Json)))
}

/// The same, of encoded requests.
fn archive_of(requests: impl IntoIterator<Item = (Vec<u8>, Encoding)>) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (body, encoding)) in requests.into_iter().enumerate() {
        let ctx = Context { tenant: "t", now_unix_nano: NOW, seed: i as u64, analytics_one_in: 1 };
        let accepted = export(Signal::Metrics, &ctx, &body, encoding).expect("accepted");
        assert_eq!(accepted.rejected, 0, "{}", String::from_utf8_lossy(&accepted.response));
        for m in accepted.messages {
            out.extend(m);
        }
    }
    out
}

fn attr(k: String, v: String) -> serde_json::Value {
    json!({ "key": k, "value": { "stringValue": v } })
}

/// A request of `points` gauge points of as many metrics, each at its own
/// minute: a series and three buckets per point, the most aggregates a
/// chunk's points can make.
fn scattered(request: usize, points: usize) -> serde_json::Value {
    let metrics: Vec<_> = (0..points)
        .map(|i| {
            let t = NOW - (1 + (request * points + i) as u64 % 2000) * 60_000_000_000;
            json!({ "name": format!("m{request}.{i}"), "gauge": { "dataPoints": [{ "timeUnixNano": t.to_string(), "asDouble": i as f64 }] } })
        })
        .collect();
    json!({ "resourceMetrics": [{ "scopeMetrics": [{ "metrics": metrics }] }] })
}

/// A request of `points` gauge points of one metric, a resource of
/// `resource` attributes of `value_bytes` each, and each point labelled
/// `i` = its index modulo `series` (one series if 1).
fn request(points: usize, series: usize, resource: usize, value_bytes: usize) -> serde_json::Value {
    let resource: Vec<_> =
        (0..resource).map(|i| attr(format!("{i:0128}"), format!("{i}").repeat(value_bytes).chars().take(value_bytes).collect())).collect();
    let data: Vec<_> = (0..points)
        .map(|i| {
            json!({ "timeUnixNano": (NOW - 60_000_000_000 - i as u64 * 1_000_000).to_string(), "asDouble": i as f64,
                    "attributes": [attr("i".into(), (i % series).to_string())] })
        })
        .collect();
    json!({ "resourceMetrics": [{ "resource": { "attributes": resource },
        "scopeMetrics": [{ "metrics": [{ "name": "m", "unit": "ms", "gauge": { "dataPoints": data } }] }] }] })
}

/// The peak heap above the start of reading `archive` and committing its
/// points, the points read and the commits made.
fn peak_of(archive: &[u8]) -> (isize, u64, u32) {
    let ((points, transactions), peak) = proto::heap::peak_of(|| {
        let mut points = 0;
        let mut transactions = 0;
        // As a run does: every part folded into pending work, committed
        // (planned and encoded as the statements' JSON) whenever that is
        // full, and at the end.
        let mut pending = Pending::default();
        let mut ids_by_hash: HashMap<u128, i64> = HashMap::new();
        let mut commit = |pending: &mut Pending| {
            let mut series = pending.take_series();
            // The minutes become head parts, bound as hex in JSON lists
            // (store::head::writes); the hours and days are merged as rows.
            let mut lists = proto::d1::JsonLists::default();
            rollup::head::parts(&mut series, &pending.names, |p| {
                lists.push(&json!([p.hour_start, p.tenant, p.metric, p.part, proto::d1::hex(&p.body)]))
            })
            .expect("head parts");
            assert!(!lists.is_empty());
            // At steady state every bucket is already in D1 (the open hour
            // and day, the minute the last run began): the commit holds a
            // stored row beside each pending one and merges them.
            let stored = series.iter().map(|(k, a)| (*k, Stored { row: a.to_row(), version: 1 })).collect();
            let lists = plan::lists(plan::writes(series, stored)).expect("planned");
            assert!(lists.writes > 0 && !lists.updates.is_empty());
            points += std::mem::take(pending).points;
            transactions += 1;
        };
        for chunk in Chunks::new(archive) {
            let chunk = chunk.expect("readable");
            for part in chunk::parts(&chunk.batches) {
                let keyed = part.keyed;
                let prepared = prepare::prepare(&keyed, &Target::own(&keyed), &HashMap::new());
                let mut ids: HashMap<u32, i64> = HashMap::new();
                for (i, s) in keyed.series.iter().enumerate() {
                    let next = ids_by_hash.len() as i64;
                    let id = *ids_by_hash.entry(s.hash).or_insert(next);
                    ids.insert(i as u32, id);
                    pending.name(id, s.tenant, s.metric);
                }
                pending.read_batches("k", part.batches);
                pending.fold(prepared, &ids, Vec::new()).expect("folded");
                if pending.full() {
                    commit(&mut pending);
                }
            }
        }
        if !pending.series.is_empty() {
            commit(&mut pending);
        }
        (points, transactions)
    });
    (peak as isize, points, transactions)
}

fn mb(bytes: isize) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

#[test]
fn one_archive_stays_well_inside_a_worker() {
    let _alone = alone();
    // 1. Hostile: 64 labels at the length limits (63 resource labels of
    //    128-byte names and 1,024-byte values, 74 KB, and the point's own)
    //    on points of one series; ten such requests in one delivery.
    let hostile = archive((0..10).map(|_| request(5_000, 1, 63, 1024)));
    // 2. The same labels on 2,000 distinct series: 2,000 identities of
    //    74 KB each.
    let distinct = archive((0..10).map(|_| request(2_000, 2_000, 63, 1024)));
    // 3. A normal delivery: 100 requests of 1,000 points over 1,000
    //    series, with a 4 KB resource.
    let normal = archive((0..100).map(|_| request(1_000, 1_000, 16, 256)));
    // 4. Every point its own series and minute: 100,000 series, 300,000
    //    buckets.
    let scattered = archive((0..100).map(|r| scattered(r, 1_000)));
    // 5. The benchmarks' fixture: 100 requests of 1,000 points (gauges,
    //    sums and 10-bucket histograms over 1,000 series), as protobuf.
    let fixture = archive_of((0..100u64).map(|i| {
        let req = proto::fixtures::metrics_request(1_000, NOW - (100 - i) * 1_000_000_000);
        (prost::Message::encode_to_vec(&req), Encoding::Protobuf)
    }));
    // 6. A minute of W1 (xtask bench-load): 60 requests of 1,000 points
    //    over 10,000 series, each series 6 points over two minutes (a run's
    //    minute of points straddles a minute boundary): 40,000 buckets.
    let w1 = archive_of((0..60u64).map(|i| {
        let at = NOW - (90 - i) * 1_000_000_000;
        let req = proto::fixtures::load_request(i, 10_000, at, NOW - 3_600_000_000_000);
        (prost::Message::encode_to_vec(&req), Encoding::Protobuf)
    }));
    let cases = [
        ("hostile", &hostile, 50_000),
        ("distinct", &distinct, 20_000),
        ("normal", &normal, 100_000),
        ("scattered", &scattered, 100_000),
        ("fixture", &fixture, 100_000),
        ("w1 minute", &w1, 60_000),
    ];
    for (name, file, points) in cases {
        let (peak, read, commits) = peak_of(file);
        eprintln!("{name}: {} KB archive, {read} points, {commits} commits, peak {:.1} MB", file.len() / 1024, mb(peak));
        assert_eq!(read, points, "{name}");
        assert!(peak < MAX_PEAK, "{name}: peak {:.1} MB, more than {:.0} MB", mb(peak), mb(MAX_PEAK));
        // A run commits W1's minute at once, so that each of its series'
        // hour and day rows is written once a run.
        if name == "w1 minute" {
            assert_eq!(commits, 1, "{name}");
        }
    }
}

/// Compacting the largest group the guard allows: an hour of 2,000 series
/// (`MAX_SERIES_PER_METRIC`'s default) of one metric, each minute of 60
/// latency samples, written by 60 commits. Compaction reads the group's
/// head rows and decodes them a few hundred series at a time
/// (`rollup::head::DECODE_BUDGET_BYTES`); the blocks, bound as hex in JSON
/// lists, are held until the group's transaction.
#[test]
fn compacting_the_largest_group_stays_well_inside_a_worker() {
    let _alone = alone();
    use proto::aggregate::{head, Aggregate};
    use proto::point::{Point, Value};
    const SERIES: i64 = 2_000;
    const HOUR: i64 = 1_800_000_000 / 3600 * 3600;
    let parts: Vec<Vec<u8>> = (0..60)
        .flat_map(|minute| {
            let start = HOUR + minute * 60;
            let aggregates: Vec<Aggregate> = (0..SERIES)
                .map(|s| {
                    let mut a = Aggregate::empty(true, "ms");
                    for i in 0..60u64 {
                        // Log-normal-ish latencies around 40 ms.
                        let v = 40.0 * (((s as u64 * 7919 + i * 104_729 + minute as u64) % 1000) as f64 / 250.0 - 2.0).exp();
                        a.add_point(&Point {
                            time_unix_nano: (start as u64 * 1000 + i * 900) * 1_000_000,
                            value: Some(Value::Gauge(v)),
                            ..Default::default()
                        });
                    }
                    a
                })
                .collect();
            let members: Vec<head::Minutes<'_>> = aggregates.iter().enumerate().map(|(s, a)| (s as i64, vec![(start, a)])).collect();
            head::encode(HOUR, &members).expect("encoded")
        })
        .collect();
    let head_bytes: usize = parts.iter().map(Vec::len).sum();
    let (blocks, peak) = proto::heap::peak_of(|| {
        let mut lists = proto::d1::JsonLists::default();
        let mut blocks = 0;
        for range in rollup::head::batches(&parts, rollup::head::DECODE_BUDGET_BYTES).expect("sizes") {
            for b in rollup::head::compact(HOUR, &parts, range, 0).expect("compacted") {
                lists.push(&json!([b.series_id, b.seq, proto::d1::hex(&b.body)]));
                blocks += 1;
            }
        }
        (blocks, lists.finish())
    });
    let peak = peak as isize;
    let list_bytes: usize = blocks.1.iter().map(String::len).sum();
    eprintln!(
        "compaction: {} head parts of {:.1} MB, {} blocks, {:.1} MB of lists, peak {:.1} MB",
        parts.len(),
        mb(head_bytes as isize),
        blocks.0,
        mb(list_bytes as isize),
        mb(peak)
    );
    assert_eq!(blocks.0, SERIES as usize);
    assert!(peak < MAX_PEAK, "peak {:.1} MB, more than {:.0} MB", mb(peak), mb(MAX_PEAK));
}
