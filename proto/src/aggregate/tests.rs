use super::*;
use crate::point::{Counter, Distribution, Point, Value};

fn gauge(v: f64, t: u64) -> Point {
    Point { metric: "g".into(), time_unix_nano: t, value: Some(Value::Gauge(v)), ..Default::default() }
}

fn gauges(values: impl IntoIterator<Item = f64>, unit: &str) -> Aggregate {
    let mut a = Aggregate::empty(true, unit);
    for (i, v) in values.into_iter().enumerate() {
        a.add_point(&gauge(v, i as u64));
    }
    a
}

/// The exact φ-quantile under the module's definition.
fn exact(values: &[f64], phi: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((phi * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// A small deterministic generator, so failures reproduce.
fn lcg(seed: &mut u64) -> f64 {
    *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (*seed >> 11) as f64 / (1u64 << 53) as f64
}

#[test]
fn integer_data_reads_back_exactly() {
    let a = gauges((1..=100).map(f64::from), "");
    assert_eq!(a.quantile(0.99), Some(99.0));
    assert_eq!(a.quantile(0.5), Some(50.0));
    assert_eq!(a.quantile(0.0), Some(1.0));
    assert_eq!(a.quantile(1.0), Some(100.0));
    assert_eq!((a.count, a.sum.value(), a.min, a.max, a.last), (100, 5050.0, Some(1.0), Some(100.0), 100.0));
}

#[test]
fn quantiles_stay_within_a_tenth_of_a_percent() {
    for (unit, lo, hi) in [("ms", 0.001_f64, 60_000.0_f64), ("s", 1e-6, 7200.0), ("", 0.001, 1e9), ("By", 1.0, 1e12)] {
        let mut seed = 7;
        // Log-uniform over the range: every order of magnitude gets samples.
        let values: Vec<f64> = (0..5000).map(|_| lo * (hi / lo).powf(lcg(&mut seed))).collect();
        let a = gauges(values.iter().copied(), unit);
        for phi in [0.001, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999] {
            let got = a.quantile(phi).unwrap();
            let want = exact(&values, phi);
            assert!(((got - want) / want).abs() <= 0.001, "{unit} p{phi}: {got} vs {want}");
        }
    }
}

#[test]
fn negative_and_zero_values_are_kept() {
    let values = [-5.0, -1.0, 0.0, 0.0, 2.0, 10.0];
    let a = gauges(values, "");
    assert_eq!(a.samples.as_ref().unwrap().len(), 6);
    for (phi, want) in [(0.0, -5.0), (0.1, -5.0), (0.3, -1.0), (0.5, 0.0), (0.8, 2.0), (1.0, 10.0)] {
        assert_eq!(a.quantile(phi), Some(want), "p{phi}");
    }
}

#[test]
fn merge_equals_adding_everything_to_one() {
    let mut seed = 3;
    let values: Vec<f64> = (0..3000).map(|_| lcg(&mut seed) * 2000.0 - 100.0).collect();
    let all = gauges(values.iter().copied(), "ms");
    let mut merged = Aggregate::empty(true, "ms");
    for chunk in values.chunks(700) {
        merged.merge(&gauges(chunk.iter().copied(), "ms"));
    }
    assert_eq!(merged.samples, all.samples);
    assert_eq!((merged.count, merged.min, merged.max), (all.count, all.min, all.max));
    assert!((merged.sum.value() - all.sum.value()).abs() < 1e-6);
}

#[test]
fn samples_survive_encoding() {
    let a = gauges([-3.5, 0.0, 1.0, 250.0, 1e6], "s");
    let s = a.samples.unwrap();
    let back = Samples::decode(&s.encode()).unwrap();
    assert_eq!(back, s);
    let empty = Samples::new(1.0);
    assert_eq!(Samples::decode(&empty.encode()).unwrap(), empty);
    // Decoded histograms keep auto-resizing, so later merges of larger values work.
    let mut back = back;
    back.record(1e9, 1);
    assert_eq!(back.len(), 6);
}

#[test]
fn corrupt_blobs_are_errors_not_panics() {
    let good = gauges([1.0, 2.0], "").samples.unwrap().encode();
    for bad in [&[][..], &[9][..], &good[..5], &good[..good.len() - 3], &[1, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 255, 255, 255, 255][..]] {
        assert!(Samples::decode(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn distributions_and_counters() {
    let mut a = Aggregate::empty(true, "ms");
    a.add_point(&Point {
        value: Some(Value::Distribution(Distribution {
            count: 4,
            sum: 10.0,
            min: Some(0.5),
            max: Some(7.0),
            values: vec![1.0, 7.0],
            counts: vec![3, 1],
            ..Default::default()
        })),
        ..Default::default()
    });
    assert_eq!((a.count, a.sum.value(), a.min, a.max), (4, 10.0, Some(0.5), Some(7.0)));
    assert_eq!(a.quantile(0.5), Some(1.0));
    assert_eq!(a.quantile(1.0), Some(7.0));

    let mut c = Aggregate::empty(false, "");
    for d in [3.0, 4.0] {
        c.add_point(&Point {
            value: Some(Value::Counter(Counter { value: d, monotonic: true, ..Default::default() })),
            ..Default::default()
        });
    }
    assert_eq!((c.count, c.sum.value()), (2, 7.0));
    assert_eq!(c.quantile(0.5), None);
}

#[test]
fn shortest_decimal_in_a_bucket() {
    assert_eq!(shortest_in(98.944, 99.007), 99.0);
    assert_eq!(shortest_in(0.0994, 0.1001), 0.1);
    assert_eq!(shortest_in(123.38, 123.44), 123.4);
    assert_eq!(shortest_in(123.41, 123.44), 123.43);
    assert_eq!(shortest_in(0.0, 0.0), 0.0);
}

#[test]
fn stored_numbers_stay_finite_and_counts_saturate() {
    // Two gauges of 1.7e308 in one bucket: their sum reached D1 as
    // Infinity, which it stores as null and `sum REAL NOT NULL` refuses.
    let a = gauges([1.7e308, 1.7e308], "");
    let row = a.to_row();
    assert_eq!(row.sum, f64::MAX, "saturated");
    assert_eq!((row.min, row.max), (Some(1.7e308), Some(1.7e308)));
    let mut merged = Aggregate::from_row(&row).unwrap();
    merged.merge(&gauges([-1.7e308], ""));
    assert!(merged.to_row().sum.is_finite());
    // A distribution's count can be anything a sender claims: it saturates.
    let mut d = Aggregate::empty(true, "");
    let huge = Point { value: Some(Value::Distribution(Distribution { count: u64::MAX - 1, ..Default::default() })), ..Default::default() };
    d.add_point(&huge);
    d.add_point(&huge);
    assert_eq!(d.count, u64::MAX);
    d.merge(&d.clone());
    assert_eq!(d.count, u64::MAX);
}

#[test]
fn sums_are_compensated_across_points_and_merges() {
    // 2 + 8 + 1e100 − 1e100, as Prometheus' own test sums it: 10, not 0.
    let mut a = Aggregate::empty(false, "");
    for v in [2.0, 1e100, 8.0] {
        a.add_point(&Point {
            value: Some(Value::Counter(Counter { value: v, monotonic: false, ..Default::default() })),
            ..Default::default()
        });
    }
    let mut b = Aggregate::empty(false, "");
    b.add_point(&Point {
        value: Some(Value::Counter(Counter { value: -1e100, monotonic: false, ..Default::default() })),
        ..Default::default()
    });
    a.merge(&b);
    assert_eq!(a.sum.value(), 10.0);
}
