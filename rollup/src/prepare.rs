//! One archive → the aggregates and cumulative states to merge into D1.
//! Pure: the D1 reads it needs are done before, the writes after.

use crate::accumulate::{Accumulator, SeriesKey};
use crate::cumulative::{self, Step};
use proto::archive::Archive;
use proto::point::Point;
use std::collections::{BTreeMap, HashMap};

/// A stored cumulative state and its guard version.
#[derive(Clone, Debug)]
pub struct StoredState {
    pub point: Point,
    pub version: i64,
}

/// A cumulative state to write: inserted if `version` is `None`, else
/// updated from that version.
#[derive(Clone, Debug, PartialEq)]
pub struct StateWrite {
    /// [`SeriesKey::hash`] of the series the state belongs to.
    pub series_hash: String,
    pub point: Point,
    pub version: Option<i64>,
}

/// Every point of the archive with its series.
pub fn keyed(archive: &Archive) -> Vec<(SeriesKey, &Point)> {
    archive.batches.iter().flat_map(|b| b.points.iter().map(move |p| (SeriesKey::in_batch(b, p), p))).collect()
}

/// Hashes of the series that have cumulative points, whose states must be
/// read first.
pub fn cumulative_hashes(keyed: &[(SeriesKey, &Point)]) -> Vec<String> {
    let mut out: Vec<String> = keyed.iter().filter(|(_, p)| cumulative::is_cumulative(p)).map(|(k, _)| k.hash()).collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Accumulates the archive's points, turning cumulative ones into deltas
/// against (and updating) each series' own stored state, and adding the
/// points of `folded` series to their overflow series. `points` counts every
/// point of the archive, including cumulative ones that add nothing new.
pub fn prepare(
    keyed: Vec<(SeriesKey, &Point)>,
    folded: &HashMap<SeriesKey, SeriesKey>,
    states: &HashMap<String, StoredState>,
) -> (Accumulator, Vec<StateWrite>) {
    let mut acc = Accumulator::default();
    let total = keyed.len() as u64;
    let target = |key: SeriesKey| match folded.get(&key) {
        Some(overflow) => overflow.clone(),
        None => key,
    };
    let mut cumulative_points: BTreeMap<String, Vec<(SeriesKey, &Point)>> = BTreeMap::new();
    for (key, p) in keyed {
        if cumulative::is_cumulative(p) {
            cumulative_points.entry(key.hash()).or_default().push((key, p));
        } else {
            acc.add_point(target(key), p);
        }
    }
    let mut writes = Vec::new();
    for (hash, mut points) in cumulative_points {
        points.sort_by_key(|(_, p)| p.time_unix_nano);
        let stored = states.get(&hash);
        let mut prev: Option<&Point> = stored.map(|s| &s.point);
        for (key, p) in points {
            if let Step::Delta(delta) = cumulative::to_delta(prev, p) {
                acc.add_point(target(key), &delta);
                prev = Some(p);
            }
        }
        if let Some(last) = prev {
            if stored.is_none_or(|s| s.point != *last) {
                writes.push(StateWrite { series_hash: hash, point: last.clone(), version: stored.map(|s| s.version) });
            }
        }
    }
    acc.points = total;
    (acc, writes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::point::{Batch, Counter, Value};
    use crate::accumulate::SeriesKey;

    fn counter(t: u64, v: f64) -> Point {
        Point {
            metric: "c".into(),
            time_unix_nano: t * 1_000_000_000,
            value: Some(Value::Counter(Counter { value: v, monotonic: true, cumulative: true, start_time_unix_nano: 1 })),
            ..Default::default()
        }
    }

    fn archive(points: Vec<Point>) -> Archive {
        Archive { version: 1, batches: vec![Batch { tenant: "t".into(), batch_id: "b".into(), points, ..Default::default() }] }
    }

    fn hash() -> String {
        SeriesKey::of("t", &counter(0, 0.0)).hash()
    }

    fn minute_sums(acc: &Accumulator) -> Vec<(i64, f64)> {
        acc.series.values().flat_map(|slots| slots.iter().filter(|(s, _)| s.resolution == 60).map(|(s, a)| (s.bucket_start, a.sum.value()))).collect()
    }

    #[test]
    fn cumulative_points_in_any_order_become_per_minute_increases() {
        let a = archive(vec![counter(180, 12.0), counter(60, 5.0), counter(120, 9.0)]);
        let k = keyed(&a);
        assert_eq!(cumulative_hashes(&k), [hash()]);
        let (acc, writes) = prepare(k, &HashMap::new(), &HashMap::new());
        assert_eq!(minute_sums(&acc), [(60, 5.0), (120, 4.0), (180, 3.0)]);
        assert_eq!(acc.points, 3);
        assert_eq!(writes, [StateWrite { series_hash: hash(), point: counter(180, 12.0), version: None }]);
    }

    #[test]
    fn stored_state_is_the_baseline_and_old_points_add_nothing() {
        let states = HashMap::from([(hash(), StoredState { point: counter(120, 9.0), version: 7 })]);
        let a = archive(vec![counter(60, 5.0), counter(180, 10.0)]);
        let (acc, writes) = prepare(keyed(&a), &HashMap::new(), &states);
        assert_eq!(minute_sums(&acc), [(180, 1.0)]);
        assert_eq!(writes[0].version, Some(7));
        // Nothing newer than the state: no write at all.
        let (acc, writes) = prepare(keyed(&archive(vec![counter(60, 5.0)])), &HashMap::new(), &states);
        assert!(acc.series.is_empty() && writes.is_empty());
        assert_eq!(acc.points, 1);
    }

    #[test]
    fn folded_series_add_to_the_overflow_series_with_their_own_deltas() {
        let mut a = counter(60, 5.0);
        a.labels = vec![proto::point::Label { key: "i".into(), value: "1".into() }];
        let mut b = counter(60, 7.0);
        b.labels = vec![proto::point::Label { key: "i".into(), value: "2".into() }];
        let mut b2 = b.clone();
        b2.time_unix_nano = 120_000_000_000;
        b2.value = Some(Value::Counter(Counter { value: 10.0, monotonic: true, cumulative: true, start_time_unix_nano: 1 }));
        let arch = archive(vec![a.clone(), b.clone(), b2]);
        let key_a = SeriesKey::of("t", &a);
        let key_b = SeriesKey::of("t", &b);
        let overflow = crate::guard::overflow_of(&key_a);
        let folded = HashMap::from([(key_a.clone(), overflow.clone()), (key_b.clone(), overflow.clone())]);
        let (acc, writes) = prepare(keyed(&arch), &folded, &HashMap::new());
        // One series in the aggregates: the overflow, holding 5 + 7 then 3.
        assert_eq!(acc.series.keys().collect::<Vec<_>>(), [&overflow]);
        assert_eq!(minute_sums(&acc), [(60, 12.0), (120, 3.0)]);
        // But each folded series keeps its own running total.
        let mut hashes: Vec<String> = writes.iter().map(|w| w.series_hash.clone()).collect();
        hashes.sort();
        let mut want = vec![key_a.hash(), key_b.hash()];
        want.sort();
        assert_eq!(hashes, want);
    }
}
