//! What a run has read but not yet committed: the aggregates of all its
//! archives merged per (series, bucket), the cumulative states they moved,
//! and the ledger entries of the batches and archives they came from.
//!
//! The rollup used to commit every archive alone, so a series that got a
//! point every 10 s had its minute, hour and day rows rewritten with every
//! archive, about 18 times a minute. Folding a run's archives first writes
//! each row once per commit, and a run commits once unless its buckets
//! exceed [`MAX_COMMIT_BUCKETS`]. Each commit is one transaction holding its
//! own ledger entries, so a run that stops between commits (a crash, a
//! budget) never counts a batch twice: the next run skips the batches the
//! ledger holds.

use crate::accumulate::Slot;
use crate::prepare::{Prepared, SetAside, StateWrite, StoredState};
use proto::aggregate::{Aggregate, AggregateError};
use proto::point::Batch;
use std::collections::{btree_map::Entry, BTreeMap, BTreeSet, HashMap, HashSet};

/// Buckets (distinct series and minute, hour or day) a run holds before it
/// commits, give or take one part's ([`crate::chunk::MAX_PART_BUCKETS`]).
/// 10,000 series that each get a point every 10 s touch about 40,000 a
/// minute, so a minutely run of them is one commit. `tests/memory.rs`
/// measures what they weigh.
pub const MAX_COMMIT_BUCKETS: usize = 30_000;

/// The unix hour (seconds, a multiple of 3600) of a batch's earliest point,
/// under which the ledger keeps its id: a copy of the batch has the same.
pub fn data_hour(batch: &Batch) -> i64 {
    let earliest = batch.points.iter().map(|p| p.time_unix_nano).min().unwrap_or(0);
    let seconds = (earliest / 1_000_000_000) as i64;
    seconds - seconds % 3600
}

/// A run's uncommitted work.
#[derive(Debug, Default)]
pub struct Pending {
    /// Aggregates per catalog id and bucket, not yet merged with D1's rows.
    /// One flat map: a map per series would allocate a node of eleven
    /// entries for a series' three or four buckets, 2 KB each.
    pub series: BTreeMap<(i64, Slot), Aggregate>,
    /// The last cumulative point per series identity, with the version D1
    /// had when the run read it.
    pub states: BTreeMap<String, StateWrite>,
    /// Batch ids by [`data_hour`].
    pub batches: BTreeMap<i64, Vec<String>>,
    ids: HashSet<String>,
    /// Archives read whole.
    pub archives: Vec<String>,
    /// Archives some of whose batches are here, whole or not, in order.
    pub touched: Vec<String>,
    /// Points read (set aside ones included).
    pub points: u64,
    /// Tenants whose cache generation the commit moves on.
    pub late: BTreeSet<String>,
    pub set_aside: SetAside,
}

impl Pending {
    /// Adds a prepared part, whose series (chunk indexes) have the catalog
    /// ids `ids`, and the tenants it writes late buckets of.
    pub fn fold(&mut self, prepared: Prepared, ids: &HashMap<u32, i64>, late: Vec<String>) -> Result<(), AggregateError> {
        for (series, slots) in prepared.acc.series {
            let id = *ids.get(&series).ok_or_else(|| AggregateError::Corrupt(format!("series {series} of the chunk has no id")))?;
            for (slot, aggregate) in slots {
                match self.series.entry((id, slot)) {
                    Entry::Vacant(v) => drop(v.insert(aggregate)),
                    Entry::Occupied(mut o) => o.get_mut().merge(&aggregate),
                }
            }
        }
        for state in prepared.states {
            self.states.insert(state.series_hash.clone(), state);
        }
        self.points += prepared.acc.points;
        self.set_aside.extend(prepared.set_aside);
        self.late.extend(late);
        Ok(())
    }

    /// Records `batches` of archive `key` as read: their ids go into the
    /// commit's ledger entries.
    pub fn read_batches(&mut self, key: &str, batches: &[Batch]) {
        if self.touched.last().is_none_or(|k| k != key) {
            self.touched.push(key.to_owned());
        }
        for b in batches.iter().filter(|b| !b.batch_id.is_empty()) {
            if self.ids.insert(b.batch_id.clone()) {
                self.batches.entry(data_hour(b)).or_default().push(b.batch_id.clone());
            }
        }
    }

    /// Whether a batch of this id is already here.
    pub fn has_batch(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    /// Records that archive `key` was read whole.
    pub fn finish(&mut self, key: &str) {
        if self.touched.last().is_none_or(|k| k != key) {
            self.touched.push(key.to_owned());
        }
        self.archives.push(key.to_owned());
    }

    /// The state a cumulative series starts from: the one this run moved
    /// it to, if any.
    pub fn state(&self, hash: &str) -> Option<StoredState> {
        self.states.get(hash).map(|w| StoredState { point: w.point.clone(), version: w.version })
    }

    pub fn buckets(&self) -> usize {
        self.series.len()
    }

    /// Whether the run commits before it reads on.
    pub fn full(&self) -> bool {
        self.series.len() >= MAX_COMMIT_BUCKETS
    }

    /// Whether there is nothing to commit.
    pub fn is_empty(&self) -> bool {
        self.touched.is_empty() && self.series.is_empty() && self.states.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accumulate::Accumulator;
    use proto::point::{Kind, Point, Value};

    fn prepared(series: u32, values: &[(f64, u64)]) -> Prepared {
        let mut acc = Accumulator::default();
        for &(v, secs) in values {
            let p = Point { metric: "m".into(), time_unix_nano: secs * 1_000_000_000, value: Some(Value::Gauge(v)), ..Default::default() };
            acc.add_point(series, Kind::Gauge, "", &p);
        }
        acc.points = values.len() as u64;
        Prepared { acc, ..Default::default() }
    }

    #[test]
    fn parts_of_many_archives_merge_into_one_row_per_bucket() {
        let mut p = Pending::default();
        // Chunk index 0 is catalog id 7 in the first part, index 3 in the second.
        p.fold(prepared(0, &[(1.0, 60), (2.0, 70)]), &HashMap::from([(0, 7)]), vec![]).unwrap();
        p.fold(prepared(3, &[(4.0, 80), (8.0, 3600)]), &HashMap::from([(3, 7)]), vec!["t".into()]).unwrap();
        assert!(p.series.keys().all(|(id, _)| *id == 7));
        let minutes: Vec<(i64, u64)> =
            p.series.iter().filter(|((_, s), _)| s.resolution == 60).map(|((_, s), a)| (s.bucket_start, a.count)).collect();
        assert_eq!(minutes, [(60, 3), (3600, 1)]);
        // Two minutes, two hours, one day.
        assert_eq!(p.buckets(), 5);
        assert_eq!(p.points, 4);
        assert_eq!(p.late.iter().collect::<Vec<_>>(), ["t"]);
        assert!(!p.full());
    }

    #[test]
    fn a_series_without_an_id_is_an_error() {
        let mut p = Pending::default();
        assert!(p.fold(prepared(0, &[(1.0, 60)]), &HashMap::new(), vec![]).is_err());
    }

    #[test]
    fn batch_ids_are_kept_once_under_their_earliest_points_hour() {
        let at = |secs: u64| Point { metric: "m".into(), time_unix_nano: secs * 1_000_000_000, ..Default::default() };
        let b =
            |id: &str, times: &[u64]| Batch { batch_id: id.into(), points: times.iter().map(|&t| at(t)).collect(), ..Default::default() };
        let batches = [b("a", &[7300, 3700]), b("b", &[10]), b("a", &[7300, 3700]), b("", &[1])];
        assert_eq!(data_hour(&batches[0]), 3600);
        let mut p = Pending::default();
        p.read_batches("k1", &batches[..2]);
        p.read_batches("k2", &batches[2..]);
        p.finish("k2");
        assert_eq!(p.batches, BTreeMap::from([(0, vec!["b".to_string()]), (3600, vec!["a".to_string()])]));
        assert!(p.has_batch("a") && !p.has_batch("c"));
        assert_eq!((p.touched.as_slice(), p.archives.as_slice()), (&["k1".to_string(), "k2".into()][..], &["k2".to_string()][..]));
        assert!(!p.is_empty());
    }
}
