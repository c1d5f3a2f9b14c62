//! One archive → the aggregates and cumulative states to merge into D1.
//! Pure: the D1 reads it needs are done before, the writes after.

use crate::accumulate::{Accumulator, SeriesKey};
use crate::cumulative::{self, Step};
use crate::plan::identity;
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
    pub series_id: i64,
    pub point: Point,
    pub version: Option<i64>,
}

/// Every point of the archive with its series.
pub fn keyed(archive: &Archive) -> Vec<(SeriesKey, &Point)> {
    archive.batches.iter().flat_map(|b| b.points.iter().map(move |p| (SeriesKey::of(&b.tenant, p), p))).collect()
}

/// Series ids that have cumulative points, whose states must be read first.
pub fn cumulative_series(keyed: &[(SeriesKey, &Point)], ids: &HashMap<(String, String, String), i64>) -> Vec<i64> {
    let mut out: Vec<i64> = keyed
        .iter()
        .filter(|(_, p)| cumulative::is_cumulative(p))
        .filter_map(|(k, _)| ids.get(&identity(k)).copied())
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Accumulates the archive's points, turning cumulative ones into deltas
/// against (and updating) the stored states. `points` counts every point of
/// the archive, including cumulative ones that add nothing new.
pub fn prepare(
    keyed: Vec<(SeriesKey, &Point)>,
    ids: &HashMap<(String, String, String), i64>,
    states: &HashMap<i64, StoredState>,
) -> (Accumulator, Vec<StateWrite>) {
    let mut acc = Accumulator::default();
    let total = keyed.len() as u64;
    let mut cumulative_points: BTreeMap<i64, Vec<(SeriesKey, &Point)>> = BTreeMap::new();
    for (key, p) in keyed {
        match ids.get(&identity(&key)) {
            Some(&id) if cumulative::is_cumulative(p) => cumulative_points.entry(id).or_default().push((key, p)),
            _ => acc.add_point(key, p),
        }
    }
    let mut writes = Vec::new();
    for (id, mut points) in cumulative_points {
        points.sort_by_key(|(_, p)| p.time_unix_nano);
        let stored = states.get(&id);
        let mut prev: Option<&Point> = stored.map(|s| &s.point);
        for (key, p) in points {
            if let Step::Delta(delta) = cumulative::to_delta(prev, p) {
                acc.add_point(key, &delta);
                prev = Some(p);
            }
        }
        if let Some(last) = prev {
            if stored.is_none_or(|s| s.point != *last) {
                writes.push(StateWrite { series_id: id, point: last.clone(), version: stored.map(|s| s.version) });
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

    fn counter(t: u64, v: f64) -> Point {
        Point {
            metric: "c".into(),
            time_unix_nano: t * 1_000_000_000,
            value: Some(Value::Counter(Counter { value: v, monotonic: true, cumulative: true, start_time_unix_nano: 1 })),
            ..Default::default()
        }
    }

    fn archive(points: Vec<Point>) -> Archive {
        Archive { version: 1, batches: vec![Batch { tenant: "t".into(), batch_id: "b".into(), points }] }
    }

    fn ids() -> HashMap<(String, String, String), i64> {
        HashMap::from([(("t".into(), "c".into(), "{}".into()), 3)])
    }

    fn minute_sums(acc: &Accumulator) -> Vec<(i64, f64)> {
        acc.series.values().flat_map(|slots| slots.iter().filter(|(s, _)| s.resolution == 60).map(|(s, a)| (s.bucket_start, a.sum))).collect()
    }

    #[test]
    fn cumulative_points_in_any_order_become_per_minute_increases() {
        let a = archive(vec![counter(180, 12.0), counter(60, 5.0), counter(120, 9.0)]);
        let k = keyed(&a);
        assert_eq!(cumulative_series(&k, &ids()), [3]);
        let (acc, writes) = prepare(k, &ids(), &HashMap::new());
        assert_eq!(minute_sums(&acc), [(60, 5.0), (120, 4.0), (180, 3.0)]);
        assert_eq!(acc.points, 3);
        assert_eq!(writes, [StateWrite { series_id: 3, point: counter(180, 12.0), version: None }]);
    }

    #[test]
    fn stored_state_is_the_baseline_and_old_points_add_nothing() {
        let states = HashMap::from([(3, StoredState { point: counter(120, 9.0), version: 7 })]);
        let a = archive(vec![counter(60, 5.0), counter(180, 10.0)]);
        let (acc, writes) = prepare(keyed(&a), &ids(), &states);
        assert_eq!(minute_sums(&acc), [(180, 1.0)]);
        assert_eq!(writes[0].version, Some(7));
        // Nothing newer than the state: no write at all.
        let (acc, writes) = prepare(keyed(&archive(vec![counter(60, 5.0)])), &ids(), &states);
        assert!(acc.series.is_empty() && writes.is_empty());
        assert_eq!(acc.points, 1);
    }
}
