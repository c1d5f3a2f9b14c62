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
//! - a new start time, a total that drops, or (for distributions) a bucket
//!   that drops or disappears is a reset: the point counts in full;
//! - otherwise the increase is the difference, bucket by bucket for
//!   distributions (matched by representative value, which depends on the
//!   bucket layout only).

use proto::point::{Counter, Distribution, Point, Value};
use std::collections::HashMap;

/// What a cumulative point contributes.
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
            Value::Counter(Counter { value: c.value - base, monotonic: c.monotonic, cumulative: false, start_time_unix_nano: 0 })
        }
        (Some(Value::Distribution(d)), prev) => {
            let base = match prev {
                Some(Value::Distribution(p)) if p.start_time_unix_nano == d.start_time_unix_nano => subtract(d, p),
                _ => None,
            };
            Value::Distribution(base.unwrap_or_else(|| Distribution {
                cumulative: false,
                start_time_unix_nano: 0,
                ..d.clone()
            }))
        }
        (other, _) => return Step::Delta(Point { value: other.clone(), ..cur.clone() }),
    };
    Step::Delta(Point { value: Some(value), ..cur.clone() })
}

/// `cur − prev` bucket by bucket, or `None` if that is not an increase (a reset).
fn subtract(cur: &Distribution, prev: &Distribution) -> Option<Distribution> {
    if cur.count < prev.count {
        return None;
    }
    let mut before: HashMap<u64, u64> = prev.values.iter().map(|v| v.to_bits()).zip(prev.counts.iter().copied()).collect();
    let mut values = Vec::new();
    let mut counts = Vec::new();
    for (&v, &c) in cur.values.iter().zip(&cur.counts) {
        let p = before.remove(&v.to_bits()).unwrap_or(0);
        let d = c.checked_sub(p)?;
        if d > 0 {
            values.push(v);
            counts.push(d);
        }
    }
    if before.values().any(|&c| c > 0) {
        // A bucket that had samples is gone: a different layout, so a reset.
        return None;
    }
    Some(Distribution {
        count: cur.count - prev.count,
        sum: cur.sum - prev.sum,
        min: None,
        max: None,
        values,
        counts,
        cumulative: false,
        start_time_unix_nano: 0,
    })
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
        // A bucket that drops, or a layout that changes, is a reset.
        let dropped = hist(30, 1, &[(1.0, 1), (5.0, 1), (9.0, 4)], 50.0);
        assert_eq!(dist(to_delta(Some(&b), &dropped)).count, 6);
        let relaid = hist(30, 1, &[(2.0, 9)], 60.0);
        assert_eq!(dist(to_delta(Some(&b), &relaid)).count, 9);
        assert_eq!(dist(to_delta(None, &a)).count, 3);
    }
}
