//! Properties of aggregation the rollup relies on: merging aggregates in
//! any order or grouping gives identical histograms, and coarser buckets
//! built by merging finer ones equal direct aggregation.

use proptest::prelude::*;
use proto::aggregate::Aggregate;
use proto::point::{Kind, Point, Value};
use rollup::accumulate::Accumulator;

fn gauge(v: f64, t: u64) -> Point {
    Point { metric: "m".into(), unit: "ms".into(), time_unix_nano: t, value: Some(Value::Gauge(v)), ..Default::default() }
}

fn aggregate_of(points: &[Point]) -> Aggregate {
    let mut a = Aggregate::empty(true, "ms");
    for p in points {
        a.add_point(p);
    }
    a
}

/// Equal in everything but float rounding of the sum.
fn assert_same(a: &Aggregate, b: &Aggregate) {
    assert_eq!((a.count, a.min, a.max), (b.count, b.min, b.max));
    assert_eq!((a.last, a.last_time_unix_nano), (b.last, b.last_time_unix_nano));
    assert_eq!(a.samples, b.samples, "histograms");
    assert!((a.sum.value() - b.sum.value()).abs() <= 1e-9 * a.sum.value().abs().max(1.0), "{} vs {}", a.sum.value(), b.sum.value());
}

fn points() -> impl Strategy<Value = Vec<Point>> {
    // Values across scales and signs; times on 12 quarter hours within 3
    // hours, so that many points share a time (the latest included).
    prop::collection::vec(
        (prop_oneof![-1e6..1e6f64, 0.0..1.0f64, Just(0.0)], 0u64..12)
            .prop_map(|(v, q)| gauge(v, 1_800_000_000_000_000_000 + q * 900 * 1_000_000_000)),
        1..200,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn merging_in_any_order_or_grouping_is_the_same(ps in points(), cut in 0usize..200, seed in any::<u64>()) {
        let whole = aggregate_of(&ps);
        // Two groups merged either way round.
        let cut = cut.min(ps.len());
        let (a, b) = (aggregate_of(&ps[..cut]), aggregate_of(&ps[cut..]));
        let mut ab = a.clone();
        ab.merge(&b);
        let mut ba = b.clone();
        ba.merge(&a);
        assert_same(&whole, &ab);
        assert_same(&whole, &ba);
        // One aggregate per point, merged in a shuffled order.
        let mut order: Vec<usize> = (0..ps.len()).collect();
        let mut x = seed | 1;
        for i in (1..order.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            order.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let mut shuffled = Aggregate::empty(true, "ms");
        for i in order {
            shuffled.merge(&aggregate_of(&ps[i..=i]));
        }
        assert_same(&whole, &shuffled);
    }

    #[test]
    fn coarser_buckets_equal_merged_finer_ones(ps in points()) {
        let mut acc = Accumulator::default();
        for p in &ps {
            acc.add_point(0, Kind::Gauge, "ms", p);
        }
        let slots = &acc.series[&0];
        for (coarse, finer) in [(3600u32, 60u32), (86_400, 3600)] {
            for (slot, direct) in slots.iter().filter(|(s, _)| s.resolution == coarse) {
                let mut merged = Aggregate::empty(true, "ms");
                for (_, a) in slots.iter().filter(|(s, _)| {
                    s.resolution == finer && s.bucket_start >= slot.bucket_start && s.bucket_start < slot.bucket_start + i64::from(coarse)
                }) {
                    merged.merge(a);
                }
                assert_same(direct, &merged);
            }
        }
    }
}
