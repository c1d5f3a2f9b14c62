//! The minute level of storage v2 (docs/STORAGE.md): a commit's minute
//! aggregates become head rows, one per (hour, tenant, exposed metric
//! name) and part
//! ([`proto::aggregate::head`]); once an hour has closed, compaction merges
//! its head rows into one block per series ([`proto::aggregate::block`]).
//! Pure, so the grouping and the merge are tested natively; the SQL is in
//! `store::head`.

use crate::accumulate::Slot;
use proto::aggregate::{block, head, Aggregate, AggregateError};
use std::collections::{BTreeMap, HashMap};

/// Seconds in an hour: a head row's and a block's span.
pub const HOUR_S: i64 = 3600;

/// How long after its end an hour is compacted: on-time data has been
/// rolled up by then (the queue's batch timeout and the next cron run).
/// Later data goes to the head as usual and is compacted by the next run.
pub const COMPACT_AFTER_S: i64 = 300;

/// A compressed block is cut in two (by minutes) above this many bytes, so
/// that every row stays well below D1's 2 MB a value.
pub const MAX_BLOCK_BYTES: usize = 1_500_000;

/// Groups (hour, tenant, metric) one run compacts at most, and at least
/// (time permitting, [`crate::config::Budget::run_ms`]): an hour of W1 is
/// about 35 groups, so even a run that spent its time applying archives
/// keeps up.
pub const MAX_GROUPS_PER_RUN: u32 = 200;
pub const MIN_GROUPS_PER_RUN: usize = 8;

/// Entry bytes (before decoding) one step of a group's compaction decodes
/// at once: decoded aggregates take about five times their entries, so a
/// group of the largest metric (2,000 series of 60-sample minutes, ~13 MB
/// of entries) is compacted a few hundred series at a time.
pub const DECODE_BUDGET_BYTES: usize = 2 << 20;

/// What one run's compaction did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Compacted {
    /// (hour, tenant, metric) groups compacted.
    pub groups: u64,
    /// Head rows they replaced, and block rows they wrote.
    pub head_rows: u64,
    pub blocks: u64,
    /// Whether due groups were left for the next run.
    pub more: bool,
}

/// Which tenant and exposed (Prometheus) metric name a catalog id belongs
/// to: the head groups by them, as dashboard-api's selections look series up.
pub type Names = HashMap<i64, (String, String)>;

/// One head row to write.
#[derive(Debug, PartialEq)]
pub struct Part {
    pub hour_start: i64,
    pub tenant: String,
    pub metric: String,
    pub part: u32,
    pub body: Vec<u8>,
}

/// Takes the minute aggregates out of `series` (a commit's pending
/// aggregates) and encodes them as head parts, handed to `emit` one at a
/// time (and each group's aggregates freed once encoded), so that a commit
/// never holds its minutes and all their encodings at once; what stays in
/// `series` is the hour and day aggregates, merged into their rows as before.
pub fn parts(series: &mut BTreeMap<(i64, Slot), Aggregate>, names: &Names, mut emit: impl FnMut(Part)) -> Result<(), AggregateError> {
    // The minutes' places sorted by (hour, tenant, metric, id, start): runs
    // of one group, each series' minutes ascending. Only the keys are
    // copied; the aggregates stay in `series` until every group is encoded.
    let mut places: Vec<(i64, &str, &str, i64, Slot)> = Vec::new();
    for &(id, slot) in series.keys().filter(|(_, s)| s.resolution == 60) {
        let (tenant, metric) = names.get(&id).ok_or_else(|| AggregateError::Corrupt(format!("series {id} has no name")))?;
        places.push((slot.bucket_start - slot.bucket_start.rem_euclid(HOUR_S), tenant, metric, id, slot));
    }
    places.sort_unstable();
    for group in places.chunk_by(|a, b| (a.0, a.1, a.2) == (b.0, b.1, b.2)) {
        let (hour_start, tenant, metric) = (group[0].0, group[0].1, group[0].2);
        let mut minutes: Vec<head::Minutes<'_>> = Vec::new();
        for &(_, _, _, id, slot) in group {
            let Some(a) = series.get(&(id, slot)) else { continue };
            match minutes.last_mut() {
                Some((last, m)) if *last == id => m.push((slot.bucket_start, a)),
                _ => minutes.push((id, vec![(slot.bucket_start, a)])),
            }
        }
        for (i, body) in head::encode(hour_start, &minutes)?.into_iter().enumerate() {
            emit(Part { hour_start, tenant: tenant.to_owned(), metric: metric.to_owned(), part: i as u32, body });
        }
    }
    drop(places);
    series.retain(|(_, slot), _| slot.resolution != 60);
    Ok(())
}

/// The series of a group's head parts, in id order, split into runs whose
/// entries take at most `budget` bytes before decoding (at least one series
/// each): compaction decodes one run at a time, so a group of many large
/// series never sits decoded in memory at once.
pub fn batches(parts: &[Vec<u8>], budget: usize) -> Result<Vec<(i64, i64)>, AggregateError> {
    let mut sizes: BTreeMap<i64, usize> = BTreeMap::new();
    for p in parts {
        for (id, len) in head::sizes(p)? {
            *sizes.entry(id).or_default() += len;
        }
    }
    let mut out = Vec::new();
    let (mut first, mut taken) = (None, 0);
    for (&id, &len) in &sizes {
        if first.is_some() && taken + len > budget {
            out.push((first.unwrap_or(id), id - 1));
            (first, taken) = (None, 0);
        }
        first.get_or_insert(id);
        taken += len;
    }
    if let (Some(first), Some((&last, _))) = (first, sizes.last_key_value()) {
        out.push((first, last));
    }
    Ok(out)
}

/// One block row to write.
#[derive(Debug, PartialEq)]
pub struct Block {
    pub series_id: i64,
    /// Tells the rows of one series-hour apart.
    pub seq: i64,
    pub body: Vec<u8>,
}

/// Merges the entries of the series `from..=to` of a group's head parts
/// into blocks: a series' minutes from several commits merge into one.
/// Each compaction numbers its rows from `seq_base`, so that late data
/// compacted later adds a row beside the first.
pub fn compact(hour_start: i64, parts: &[Vec<u8>], (from, to): (i64, i64), seq_base: i64) -> Result<Vec<Block>, AggregateError> {
    let mut merged: BTreeMap<i64, BTreeMap<i64, Aggregate>> = BTreeMap::new();
    for p in parts {
        for (id, minutes) in head::decode(hour_start, p, |id| (from..=to).contains(&id))? {
            let series = merged.entry(id).or_default();
            for (start, a) in minutes {
                match series.entry(start) {
                    std::collections::btree_map::Entry::Vacant(v) => drop(v.insert(a)),
                    std::collections::btree_map::Entry::Occupied(mut o) => o.get_mut().merge(&a),
                }
            }
        }
    }
    let mut out = Vec::new();
    for (series_id, minutes) in merged {
        let minutes: Vec<(i64, &Aggregate)> = minutes.iter().map(|(s, a)| (*s, a)).collect();
        for (i, body) in encode_split(hour_start, &minutes, MAX_BLOCK_BYTES)?.into_iter().enumerate() {
            out.push(Block { series_id, seq: seq_base + i as i64, body });
        }
    }
    Ok(out)
}

/// One block, or several of consecutive minutes if one would take more
/// than `max_bytes` (or more than a block's body may hold).
fn encode_split(hour_start: i64, minutes: &[(i64, &Aggregate)], max_bytes: usize) -> Result<Vec<Vec<u8>>, AggregateError> {
    let whole = match block::encode(hour_start, minutes) {
        Ok(b) if b.len() <= max_bytes => Some(b),
        Ok(_) | Err(AggregateError::Corrupt(_)) if minutes.len() > 1 => None,
        other => return other.map(|b| vec![b]),
    };
    match whole {
        Some(b) => Ok(vec![b]),
        None => {
            let (a, b) = minutes.split_at(minutes.len() / 2);
            let mut out = encode_split(hour_start, a, max_bytes)?;
            out.extend(encode_split(hour_start, b, max_bytes)?);
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::point::{Point, Value};

    const HOUR: i64 = 1_800_000_000 / 3600 * 3600;

    /// The blocks a reader finds for one series-hour, merged minute by minute,
    /// ascending.
    fn read_blocks<'a>(hour_start: i64, bodies: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<(i64, Aggregate)>, AggregateError> {
        let mut merged: BTreeMap<i64, Aggregate> = BTreeMap::new();
        for body in bodies {
            for (start, a) in block::decode(hour_start, body)? {
                match merged.entry(start) {
                    std::collections::btree_map::Entry::Vacant(v) => drop(v.insert(a)),
                    std::collections::btree_map::Entry::Occupied(mut o) => o.get_mut().merge(&a),
                }
            }
        }
        Ok(merged.into_iter().collect())
    }

    fn gauge(start: i64, values: &[f64]) -> Aggregate {
        let mut a = Aggregate::empty(true, "ms");
        for (i, &v) in values.iter().enumerate() {
            let t = (start as u64 * 1000 + i as u64) * 1_000_000;
            a.add_point(&Point { time_unix_nano: t, value: Some(Value::Gauge(v)), ..Default::default() });
        }
        a
    }

    fn minute(start: i64) -> Slot {
        Slot { resolution: 60, bucket_start: start }
    }

    fn names() -> Names {
        HashMap::from([(1, ("t".into(), "a".into())), (2, ("t".into(), "a".into())), (3, ("u".into(), "a".into()))])
    }

    #[test]
    fn minutes_become_head_parts_per_hour_tenant_and_metric_and_coarser_buckets_stay() {
        let mut series = BTreeMap::from([
            ((1, minute(HOUR)), gauge(HOUR, &[1.0])),
            ((1, minute(HOUR + 3600)), gauge(HOUR + 3600, &[2.0])),
            ((1, Slot { resolution: 3600, bucket_start: HOUR }), gauge(HOUR, &[1.0])),
            ((2, minute(HOUR + 60)), gauge(HOUR + 60, &[3.0])),
            ((3, minute(HOUR)), gauge(HOUR, &[4.0])),
        ]);
        let mut parts = Vec::new();
        super::parts(&mut series, &names(), |p| parts.push(p)).unwrap();
        let keys: Vec<(i64, &str, &str, u32)> =
            parts.iter().map(|p| (p.hour_start, p.tenant.as_str(), p.metric.as_str(), p.part)).collect();
        assert_eq!(keys, [(HOUR, "t", "a", 0), (HOUR, "u", "a", 0), (HOUR + 3600, "t", "a", 0)]);
        let first: Vec<(i64, u64)> =
            head::decode(HOUR, &parts[0].body, |_| true).unwrap().into_iter().map(|(id, m)| (id, m[0].1.count)).collect();
        assert_eq!(first, [(1, 1), (2, 1)]);
        assert_eq!(series.keys().collect::<Vec<_>>(), [&(1, Slot { resolution: 3600, bucket_start: HOUR })]);

        let mut unnamed = BTreeMap::from([((9, minute(HOUR)), gauge(HOUR, &[1.0]))]);
        assert!(super::parts(&mut unnamed, &names(), drop).is_err());
    }

    #[test]
    fn compaction_merges_every_commits_minutes_of_a_series_into_one_block() {
        let (a, b, c) = (gauge(HOUR, &[1.0, 2.0]), gauge(HOUR, &[3.0]), gauge(HOUR + 120, &[5.0]));
        let commit1 = head::encode(HOUR, &[(1, vec![(HOUR, &a)]), (2, vec![(HOUR, &c)])]).unwrap().remove(0);
        let commit2 = head::encode(HOUR, &[(1, vec![(HOUR, &b), (HOUR + 120, &c)])]).unwrap().remove(0);
        let parts = vec![commit1, commit2];
        assert_eq!(batches(&parts, usize::MAX).unwrap(), [(1, 2)]);
        let blocks = compact(HOUR, &parts, (1, 2), 640).unwrap();
        assert_eq!(blocks.iter().map(|b| (b.series_id, b.seq)).collect::<Vec<_>>(), [(1, 640), (2, 640)]);
        let one = read_blocks(HOUR, [blocks[0].body.as_slice()]).unwrap();
        let counts: Vec<(i64, u64, f64)> = one.iter().map(|(s, a)| (*s, a.count, a.sum.value())).collect();
        assert_eq!(counts, [(HOUR, 3, 6.0), (HOUR + 120, 1, 5.0)]);
        // Only the asked-for series.
        assert_eq!(compact(HOUR, &parts, (2, 2), 0).unwrap().len(), 1);
        // A late row of the same series-hour is merged by readers.
        let late = compact(HOUR, &[head::encode(HOUR, &[(1, vec![(HOUR, &b)])]).unwrap().remove(0)], (1, 1), 700).unwrap();
        let both = read_blocks(HOUR, [blocks[0].body.as_slice(), late[0].body.as_slice()]).unwrap();
        assert_eq!(both.iter().map(|(s, a)| (*s, a.count)).collect::<Vec<_>>(), [(HOUR, 4), (HOUR + 120, 1)]);
    }

    #[test]
    fn batches_keep_each_series_whole_within_the_budget() {
        let a = gauge(HOUR, &[1.0, 2.0, 3.0]);
        let parts: Vec<Vec<u8>> = (0..3)
            .map(|commit| {
                let members: Vec<head::Minutes<'_>> = (0..10).map(|id| (id * 3 + commit, vec![(HOUR, &a)])).collect();
                head::encode(HOUR, &members).unwrap().remove(0)
            })
            .collect();
        let entry = head::sizes(&parts[0]).unwrap()[0].1;
        let runs = batches(&parts, entry * 4).unwrap();
        // 30 series of one entry each, four a run.
        assert_eq!(runs.len(), 8);
        assert_eq!(runs.first(), Some(&(0, 3)));
        assert_eq!(runs.last(), Some(&(28, 29)));
        let total: usize = runs.iter().map(|&r| compact(HOUR, &parts, r, 0).unwrap().len()).sum();
        assert_eq!(total, 30);
    }

    #[test]
    fn a_block_too_large_for_one_row_is_split_by_minutes() {
        let minutes: Vec<Aggregate> =
            (0..60).map(|m| gauge(HOUR + m * 60, &(0..50).map(|i| f64::from(i) * 97.3 + m as f64).collect::<Vec<_>>())).collect();
        let refs: Vec<(i64, &Aggregate)> = minutes.iter().enumerate().map(|(m, a)| (HOUR + m as i64 * 60, a)).collect();
        let whole = encode_split(HOUR, &refs, MAX_BLOCK_BYTES).unwrap();
        assert_eq!(whole.len(), 1);
        let limit = whole[0].len() / 5;
        let pieces = encode_split(HOUR, &refs, limit).unwrap();
        assert!(pieces.len() >= 5, "{} pieces", pieces.len());
        assert!(pieces.iter().all(|p| p.len() <= limit));
        let back = read_blocks(HOUR, pieces.iter().map(Vec::as_slice)).unwrap();
        assert_eq!(back.iter().map(|(s, a)| (*s, a.count)).collect::<Vec<_>>(), (0..60).map(|m| (HOUR + m * 60, 50)).collect::<Vec<_>>());
        // A single minute cannot be cut further: it stays whole, as its row
        // did in the minute table.
        assert_eq!(encode_split(HOUR, &refs[..1], 10).unwrap().len(), 1);
    }
}
