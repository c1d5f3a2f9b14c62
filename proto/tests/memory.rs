//! Aggregates held by the thousand fit in a Worker's 128 MB: a 7-day query
//! reads 10,080 minute buckets, and a rollup run holds every bucket an
//! archive touches. A dense HdrHistogram of millisecond latencies takes
//! about 139 KB whatever it holds (1.4 GB for a week of minutes); the
//! sparse samples take bytes per recorded bucket.
//!
//! A counting allocator measures the heap the live aggregates hold.

use proto::aggregate::Aggregate;
use proto::heap;
use proto::point::{Point, Value};

#[global_allocator]
static HEAP: proto::heap::Counting = proto::heap::Counting;

/// A minute of 60 latencies between 1 and 4,000 ms, as the rollup builds it.
fn minute(seed: u64) -> Aggregate {
    let mut a = Aggregate::empty(true, "ms");
    for i in 0..60u64 {
        let x = (seed * 60 + i).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
        let v = 1.0 + (x % 4_000_000) as f64 / 1000.0;
        a.add_point(&Point { value: Some(Value::Gauge(v)), ..Default::default() });
    }
    a
}

/// Heap per minute aggregate at most: 10,080 of them (a week) then hold
/// under 30 MB.
const MAX_BYTES_PER_MINUTE: isize = 3 * 1024;

#[test]
fn a_week_of_minute_aggregates_fits_in_a_worker() {
    // A thousand minutes measure the per-minute cost; a debug build of the
    // full week takes half a minute.
    const MINUTES: u64 = 1000;
    let rows: Vec<_> = (0..MINUTES).map(|m| minute(m).to_row()).collect();
    let before = heap::live() as isize;
    // Decoded as dashboard-api holds them for one query...
    let decoded: Vec<Aggregate> = rows.iter().map(|r| Aggregate::from_row(r).unwrap()).collect();
    let per_minute = (heap::live() as isize - before) / MINUTES as isize;
    assert!(per_minute < MAX_BYTES_PER_MINUTE, "a decoded minute holds {per_minute} bytes");
    // ...and built as the rollup holds an archive's buckets.
    let before = heap::live() as isize;
    let built: Vec<Aggregate> = (0..MINUTES).map(minute).collect();
    let per_minute = (heap::live() as isize - before) / MINUTES as isize;
    assert_eq!(built.len(), decoded.len());
    assert!(per_minute < MAX_BYTES_PER_MINUTE, "a built minute holds {per_minute} bytes");
    // Merging them all, as a long window's quantile does, is one aggregate.
    let mut all = Aggregate::empty(true, "ms");
    for a in &decoded {
        all.merge(a);
    }
    assert_eq!(all.count, MINUTES * 60);
}
