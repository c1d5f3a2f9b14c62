//! Cumulative → delta. Senders using cumulative temporality report running
//! totals since a start time; the aggregates store increases per bucket. The
//! state this needs (each series' previous point) lives in D1
//! (`cumulative_state`), written in the same transaction as the aggregates:
//! the rollup is the one writer of both, so the state survives isolate
//! restarts and is never updated from two places at once, which per-isolate
//! memory in ingest could not promise.
//!
//! Rules, for a series' points in time order:
//! - the first point ever seen counts in full: it is the increase since its
//!   start time;
//! - a point no later than the previous one was already counted (a retry, or
//!   out of order): it is skipped;
//! - a new start time or a total that drops (a counter's value, a
//!   distribution's count) is a reset: the point counts in full;
//! - otherwise the increase is the difference: for distributions, count and
//!   sum exactly, and the samples bucket by bucket, matched by
//!   representative value (which depends on the bucket layout only). An
//!   exponential histogram whose scale changed between the two points (the
//!   SDKs lower it within a stream as values spread out) is subtracted at
//!   the coarser scale, the finer point's buckets merged down first. Should
//!   a bucket still drop (a layout change without a new start time), the
//!   increase keeps its exact count and sum but carries no samples.

use proto::point::{Counter, Distribution, Point, Value};
use std::collections::HashMap;

/// What a cumulative point contributes.
// One Step lives at a time and is consumed at once; boxing the point would
// cost an allocation per cumulative point for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq)]
pub enum Step {
    /// This delta point; the cumulative point becomes the new state.
    Delta(Point),
    /// Nothing: the point is not newer than the state.
    Skip,
}

/// Whether a point needs converting.
pub fn is_cumulative(p: &Point) -> bool {
    match &p.value {
        Some(Value::Counter(c)) => c.cumulative,
        Some(Value::Distribution(d)) => d.cumulative,
        _ => false,
    }
}

/// The delta of `cur` given the series' previous cumulative point.
pub fn to_delta(prev: Option<&Point>, cur: &Point) -> Step {
    if let Some(prev) = prev {
        if cur.time_unix_nano <= prev.time_unix_nano {
            return Step::Skip;
        }
    }
    let value = match (&cur.value, prev.and_then(|p| p.value.as_ref())) {
        (Some(Value::Counter(c)), prev) => {
            let base = match prev {
                Some(Value::Counter(p)) if p.start_time_unix_nano == c.start_time_unix_nano && p.value <= c.value => p.value,
                _ => 0.0,
            };
            let value = proto::sum::saturate(c.value - base);
            Value::Counter(Counter { value, monotonic: c.monotonic, cumulative: false, start_time_unix_nano: 0 })
        }
        (Some(Value::Distribution(d)), prev) => {
            let base = match prev {
                Some(Value::Distribution(p)) if p.start_time_unix_nano == d.start_time_unix_nano => subtract(d, p),
                _ => None,
            };
            Value::Distribution(base.unwrap_or_else(|| Distribution { cumulative: false, start_time_unix_nano: 0, ..d.clone() }))
        }
        (other, _) => return Step::Delta(Point { value: other.clone(), ..cur.clone() }),
    };
    Step::Delta(Point { value: Some(value), ..cur.clone() })
}

/// `cur − prev`, or `None` if that is not an increase (a reset).
fn subtract(cur: &Distribution, prev: &Distribution) -> Option<Distribution> {
    if cur.count < prev.count {
        return None;
    }
    let delta = Distribution {
        count: cur.count - prev.count,
        sum: proto::sum::saturate(cur.sum - prev.sum),
        min: None,
        max: None,
        values: Vec::new(),
        counts: Vec::new(),
        cumulative: false,
        start_time_unix_nano: 0,
        exponential_scale: None,
    };
    // Both at the coarser scale when they are exponential histograms.
    let (cur, prev) = match (cur.exponential_scale, prev.exponential_scale) {
        (Some(a), Some(b)) if a > b => (std::borrow::Cow::Owned(downscale(cur, a, b)), std::borrow::Cow::Borrowed(prev)),
        (Some(a), Some(b)) if a < b => (std::borrow::Cow::Borrowed(cur), std::borrow::Cow::Owned(downscale(prev, b, a))),
        _ => (std::borrow::Cow::Borrowed(cur), std::borrow::Cow::Borrowed(prev)),
    };
    let mut before: HashMap<u64, u64> = prev.values.iter().map(|v| v.to_bits()).zip(prev.counts.iter().copied()).collect();
    let mut values = Vec::new();
    let mut counts = Vec::new();
    for (&v, &c) in cur.values.iter().zip(&cur.counts) {
        let p = before.remove(&v.to_bits()).unwrap_or(0);
        let Some(d) = c.checked_sub(p) else { return Some(delta) };
        if d > 0 {
            values.push(v);
            counts.push(d);
        }
    }
    if before.values().any(|&c| c > 0) {
        // A bucket that had samples is gone: the buckets do not subtract.
        return Some(delta);
    }
    Some(Distribution { values, counts, exponential_scale: cur.exponential_scale, ..delta })
}

/// An exponential histogram's buckets at scale `from` merged into those of
/// the coarser scale `to`: bucket `i` becomes `i >> (from − to)`, as the
/// OpenTelemetry SDKs downscale. Representatives are recomputed at `to`.
fn downscale(d: &Distribution, from: i32, to: i32) -> Distribution {
    let shift = (from - to) as u32;
    let base = 2f64.powf(2f64.powi(-to));
    let mut merged: Vec<(f64, u64)> = Vec::with_capacity(d.values.len());
    let mut slot: HashMap<u64, usize> = HashMap::new();
    for (&v, &c) in d.values.iter().zip(&d.counts) {
        let rep = if v == 0.0 {
            0.0
        } else {
            // v = ±base_from^(i + 0.5), so i = log2|v|·2^from − 0.5.
            let i = (v.abs().log2() * 2f64.powi(from) - 0.5).round() as i64;
            v.signum() * base.powf(((i >> shift) as f64) + 0.5)
        };
        match slot.get(&rep.to_bits()) {
            Some(&k) => merged[k].1 = merged[k].1.saturating_add(c),
            None => {
                slot.insert(rep.to_bits(), merged.len());
                merged.push((rep, c));
            }
        }
    }
    Distribution {
        values: merged.iter().map(|m| m.0).collect(),
        counts: merged.iter().map(|m| m.1).collect(),
        exponential_scale: Some(to),
        ..d.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter(t: u64, start: u64, v: f64) -> Point {
        Point {
            metric: "c".into(),
            time_unix_nano: t,
            value: Some(Value::Counter(Counter { value: v, monotonic: true, cumulative: true, start_time_unix_nano: start })),
            ..Default::default()
        }
    }

    fn delta(step: Step) -> f64 {
        match step {
            Step::Delta(Point { value: Some(Value::Counter(c)), .. }) => {
                assert!(!c.cumulative);
                c.value
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn counters() {
        assert_eq!(delta(to_delta(None, &counter(10, 1, 5.0))), 5.0, "the first point counts from its start");
        assert_eq!(delta(to_delta(Some(&counter(10, 1, 5.0)), &counter(20, 1, 8.0))), 3.0);
        assert_eq!(to_delta(Some(&counter(20, 1, 8.0)), &counter(20, 1, 8.0)), Step::Skip, "a retry");
        assert_eq!(to_delta(Some(&counter(20, 1, 8.0)), &counter(15, 1, 6.0)), Step::Skip, "out of order");
        assert_eq!(delta(to_delta(Some(&counter(20, 1, 8.0)), &counter(30, 25, 2.0))), 2.0, "new start time");
        assert_eq!(delta(to_delta(Some(&counter(20, 1, 8.0)), &counter(30, 1, 2.0))), 2.0, "a drop is a reset");
    }

    fn hist(t: u64, start: u64, buckets: &[(f64, u64)], sum: f64) -> Point {
        Point {
            metric: "h".into(),
            time_unix_nano: t,
            value: Some(Value::Distribution(Distribution {
                count: buckets.iter().map(|b| b.1).sum(),
                sum,
                values: buckets.iter().map(|b| b.0).collect(),
                counts: buckets.iter().map(|b| b.1).collect(),
                cumulative: true,
                start_time_unix_nano: start,
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    /// A cumulative exponential histogram point as normalize makes it.
    fn exp(t: u64, scale: i32, offset: i32, buckets: &[u64], sum: f64) -> Point {
        let body = format!(
            r#"{{"resourceMetrics":[{{"scopeMetrics":[{{"metrics":[{{"name":"x","exponentialHistogram":{{"aggregationTemporality":2,
               "dataPoints":[{{"startTimeUnixNano":"1","timeUnixNano":"{t}","count":"{}","sum":{sum},"scale":{scale},
               "positive":{{"offset":{offset},"bucketCounts":{buckets:?}}}}}]}}}}]}}]}}]}}"#,
            buckets.iter().sum::<u64>()
        );
        let req = proto::decode::metrics(body.as_bytes(), proto::decode::Encoding::Json).unwrap();
        let mut points = proto::normalize::metrics::normalize(req, t).points();
        assert_eq!(points.len(), 1);
        points.remove(0)
    }

    #[test]
    fn exponential_histograms_subtract_across_a_lower_scale() {
        // The issue's case: scale 1 buckets [2, 2] (count 4, sum 5), then
        // scale 0 bucket [6] (count 6, sum 8), same start time. The scale-1
        // buckets 0 and 1 are scale-0 bucket 0: the increase is 2 there.
        let a = exp(10, 1, 0, &[2, 2], 5.0);
        let b = exp(20, 0, 0, &[6], 8.0);
        let d = dist(to_delta(Some(&a), &b));
        assert_eq!((d.count, d.sum, d.counts.clone()), (2, 3.0, vec![2]));
        assert_eq!(d.values, dist(to_delta(None, &b)).values, "at scale 0's representative");
        // Offsets shift with the scale too (floor division of indexes,
        // negative ones included): scale 3 buckets -3..=4 into scale 1.
        let fine = exp(10, 3, -3, &[1, 1, 1, 1, 1, 1, 1, 1], 1.0);
        let coarse = exp(20, 1, -1, &[3, 6, 1], 2.0);
        let d = dist(to_delta(Some(&fine), &coarse));
        // At scale 1 the fine point is bucket -1: 3 (-3..=-1), 0: 4
        // (0..=3) and 1: 1 (4); the coarse one adds 2 to bucket 0.
        assert_eq!(d.count, 2);
        assert_eq!(d.counts.iter().sum::<u64>(), 2, "{d:?}");
        // A point finer than the state is brought down to the state's scale.
        let up = exp(30, 2, 0, &[4, 4, 0, 0], 9.0);
        let from_b = dist(to_delta(Some(&b), &up));
        assert_eq!((from_b.count, from_b.counts.clone()), (2, vec![2]));
    }

    fn dist(step: Step) -> Distribution {
        match step {
            Step::Delta(Point { value: Some(Value::Distribution(d)), .. }) => d,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn distributions_subtract_bucket_by_bucket() {
        let a = hist(10, 1, &[(1.0, 2), (5.0, 1)], 7.0);
        let b = hist(20, 1, &[(1.0, 3), (5.0, 1), (9.0, 4)], 44.0);
        let d = dist(to_delta(Some(&a), &b));
        assert_eq!((d.count, d.sum, d.values.clone(), d.counts.clone()), (5, 37.0, vec![1.0, 9.0], vec![1, 4]));
        assert!(!d.cumulative);
        // A count that drops is a reset: the point counts in full.
        let dropped = hist(30, 1, &[(1.0, 1), (5.0, 1), (9.0, 4)], 50.0);
        assert_eq!(dist(to_delta(Some(&b), &dropped)).count, 6);
        // Buckets that no longer subtract with the same start time and a
        // higher count are not a reset: count and sum stay exact, without
        // samples for the interval.
        let relaid = hist(30, 1, &[(2.0, 9)], 60.0);
        let d = dist(to_delta(Some(&b), &relaid));
        assert_eq!((d.count, d.sum, d.values.len()), (1, 16.0, 0));
        assert_eq!(dist(to_delta(None, &a)).count, 3);
        // A new start time is a reset.
        assert_eq!(dist(to_delta(Some(&b), &hist(30, 2, &[(2.0, 9)], 60.0))).count, 9);
    }
}
