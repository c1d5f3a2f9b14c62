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

/// Bytes of aggregates ([`Aggregate::bytes`]) a run holds before it
/// commits, give or take one part's ([`crate::chunk::MAX_PART_BUCKETS`]).
/// A commit holds about three times that at its peak: the aggregates, the
/// stored rows it reads for them and the statements' JSON
/// (`tests/memory.rs` measures it). A minute of 10,000 series that each get
/// a point every 10 s (xtask's W1) is about 40,000 buckets of mostly
/// small histograms, 11 MB: one commit a minutely run, so that each hour
/// and day row is written once a run, not once a commit.
pub const MAX_COMMIT_BYTES: usize = 14 << 20;

/// Buckets (distinct series and minute, hour or day) a run holds at most
/// before it commits, however small: each is a D1 row to read and write in
/// one transaction.
pub const MAX_COMMIT_BUCKETS: usize = 100_000;

/// What a pending bucket weighs beyond its aggregate: its key and its share
/// of the map's nodes.
const ENTRY_BYTES: usize = 64;

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
    /// What `series` weighs, by [`Aggregate::bytes`].
    bytes: usize,
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
    /// The tenant and exposed metric name of each catalog id in `series`: the head
    /// groups minutes by them ([`crate::head::parts`]).
    pub names: crate::head::Names,
}

impl Pending {
    /// Records the tenant and metric (OpenTelemetry spelling; kept in its
    /// exposed spelling) of catalog id `id`.
    pub fn name(&mut self, id: i64, tenant: &str, metric: &str) {
        self.names.entry(id).or_insert_with(|| (tenant.to_owned(), proto::names::prom_name(metric)));
    }

    /// Adds a prepared part, whose series (chunk indexes) have the catalog
    /// ids `ids`, and the tenants it writes late buckets of.
    pub fn fold(&mut self, prepared: Prepared, ids: &HashMap<u32, i64>, late: Vec<String>) -> Result<(), AggregateError> {
        for (series, slots) in prepared.acc.series {
            let id = *ids.get(&series).ok_or_else(|| AggregateError::Corrupt(format!("series {series} of the chunk has no id")))?;
            for (slot, aggregate) in slots {
                match self.series.entry((id, slot)) {
                    Entry::Vacant(v) => self.bytes += ENTRY_BYTES + v.insert(aggregate).bytes(),
                    Entry::Occupied(mut o) => {
                        let before = o.get().bytes();
                        o.get_mut().merge(&aggregate);
                        self.bytes = (self.bytes + o.get().bytes()).saturating_sub(before);
                    }
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

    /// What its aggregates weigh.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether the run commits before it reads on.
    pub fn full(&self) -> bool {
        self.bytes >= MAX_COMMIT_BYTES || self.series.len() >= MAX_COMMIT_BUCKETS
    }

    /// Takes the aggregates out, to commit them.
    pub fn take_series(&mut self) -> BTreeMap<(i64, Slot), Aggregate> {
        self.bytes = 0;
        std::mem::take(&mut self.series)
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
    fn the_commit_budget_is_in_bytes_so_a_minute_of_many_small_series_is_one_commit() {
        let mut p = Pending::default();
        // 14,000 series of one gauge sample: 42,000 small buckets.
        for id in 0..14_000 {
            p.fold(prepared(0, &[(1.0, 60)]), &HashMap::from([(0, id)]), vec![]).unwrap();
        }
        assert_eq!(p.buckets(), 42_000);
        assert!(!p.full(), "{} bytes", p.bytes());
        // Merging more distinct samples into the same buckets weighs more.
        let before = p.bytes();
        for id in 0..14_000 {
            let values: Vec<(f64, u64)> = (0..40).map(|i| (f64::from(i) * 1.5 + 2.0, 61)).collect();
            p.fold(prepared(0, &values), &HashMap::from([(0, id)]), vec![]).unwrap();
            if p.full() {
                break;
            }
        }
        assert!(p.bytes() > before && p.full(), "{} bytes after {before}", p.bytes());
        assert_eq!(p.buckets(), 42_000);
        let taken = p.take_series();
        assert_eq!((taken.len(), p.bytes(), p.full()), (42_000, 0, false));
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
