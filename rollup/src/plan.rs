//! Merging new aggregates into stored rows: which rows to insert, which to
//! update and at what version. Pure, so the merge rules are tested natively.

use crate::accumulate::Slot;
use proto::aggregate::{Aggregate, AggregateError, Row};
use std::collections::BTreeMap;

/// A stored aggregate row with its guard version.
#[derive(Clone, Debug)]
pub struct Stored {
    pub row: Row,
    pub version: i64,
}

/// One guarded write.
#[derive(Clone, Debug, PartialEq)]
pub enum Write {
    /// A row that did not exist when read: a plain INSERT, which fails (and
    /// rolls the batch back) if another writer inserted it meanwhile.
    Insert { series_id: i64, slot: Slot, row: Row },
    /// A row that existed at `version`: updated to `version + 1` only if it is
    /// still at `version`.
    Update { series_id: i64, slot: Slot, row: Row, version: i64 },
}

impl Write {
    /// The write as one item of the JSON list parameter the store binds
    /// (`json_each`): its place, its count, its four REALs as exact
    /// `[m, e]` pairs ([`proto::d1::real_parts`]), the time of its last
    /// point, the samples in hex, and for an update the version read.
    pub fn json(self) -> serde_json::Value {
        let (series_id, slot, row, version) = match self {
            Write::Insert { series_id, slot, row } => (series_id, slot, row, None),
            Write::Update { series_id, slot, row, version } => (series_id, slot, row, Some(version)),
        };
        let mut item = vec![series_id.into(), slot.resolution.into(), slot.bucket_start.into(), (row.count as u64).into()];
        for real in [Some(row.sum), row.min, row.max, Some(row.last)] {
            item.extend(proto::d1::real_json(real));
        }
        item.push((row.last_time_ms as i64).into());
        item.push(row.samples.as_deref().map(proto::d1::hex).into());
        item.extend(version.map(serde_json::Value::from));
        item.into()
    }
}

/// Stored rows by place, sorted by place ([`sorted`]): a run reads one
/// beside each pending bucket, so they are kept as compactly as a vector
/// allows and matched in one ordered pass.
pub type StoredRows = Vec<((i64, Slot), Stored)>;

/// `rows` sorted by place, as [`writes`] takes them.
pub fn sorted(mut rows: StoredRows) -> StoredRows {
    rows.sort_unstable_by_key(|(place, _)| *place);
    rows
}

/// The writes that merge `series` (aggregates per catalog id and bucket,
/// [`crate::pending::Pending::series`]) into the stored rows (sorted by
/// place; places not in `series` are skipped), one at a time. It takes
/// both, freeing each aggregate and stored row as its write is made, so
/// that a commit never holds all three at once.
pub fn writes(series: BTreeMap<(i64, Slot), Aggregate>, stored: StoredRows) -> impl Iterator<Item = Result<Write, AggregateError>> {
    let mut stored = stored.into_iter().peekable();
    series.into_iter().map(move |(place, fresh)| {
        while stored.next_if(|(p, _)| *p < place).is_some() {}
        let (series_id, slot) = place;
        match stored.next_if(|(p, _)| *p == place) {
            None => Ok(Write::Insert { series_id, slot, row: fresh.to_row() }),
            Some((_, s)) => {
                let mut merged = Aggregate::from_row(&s.row)?;
                merged.merge(&fresh);
                Ok(Write::Update { series_id, slot, row: merged.to_row(), version: s.version })
            }
        }
    })
}

/// Writes as the store binds them: the inserts and the updates, each as
/// JSON list parameters ([`Write::json`]).
#[derive(Debug, Default)]
pub struct Lists {
    pub inserts: Vec<String>,
    pub updates: Vec<String>,
    /// Writes in all.
    pub writes: usize,
}

/// `writes` encoded as they come, so that no write outlives its JSON item.
pub fn lists(writes: impl IntoIterator<Item = Result<Write, AggregateError>>) -> Result<Lists, AggregateError> {
    let (mut inserts, mut updates) = (proto::d1::JsonLists::default(), proto::d1::JsonLists::default());
    for write in writes {
        let write = write?;
        let into = if matches!(write, Write::Insert { .. }) { &mut inserts } else { &mut updates };
        into.push(&write.json());
    }
    let writes = inserts.len() + updates.len();
    Ok(Lists { inserts: inserts.finish(), updates: updates.finish(), writes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accumulate::Accumulator;
    use proto::point::{Kind, Point, Value};

    /// Aggregates of `values` for catalog id 7.
    fn acc(values: &[f64]) -> BTreeMap<(i64, Slot), Aggregate> {
        let mut acc = Accumulator::default();
        for &v in values {
            let p = Point { metric: "m".into(), time_unix_nano: 120_000_000_000, value: Some(Value::Gauge(v)), ..Default::default() };
            acc.add_point(0, Kind::Gauge, "", &p);
        }
        acc.series.into_values().flat_map(|slots| slots.into_iter().map(|(slot, a)| ((7, slot), a))).collect()
    }

    #[test]
    fn a_write_is_one_json_item_in_column_order() {
        let row = Row { count: 2.0, sum: 3.5, min: Some(1.0), max: None, last: 2.5, last_time_ms: 9.0, samples: Some(vec![0xab, 1]) };
        let slot = Slot { resolution: 60, bucket_start: 120 };
        let insert = Write::Insert { series_id: 7, slot, row: row.clone() };
        assert_eq!(insert.json().to_string(), r#"[7,60,120,2,7,-1,1,0,null,null,5,-1,9,"ab01"]"#);
        let update = Write::Update { series_id: 7, slot, row: Row { samples: None, ..row }, version: 4 };
        assert_eq!(update.json().to_string(), r#"[7,60,120,2,7,-1,1,0,null,null,5,-1,9,null,4]"#);
    }

    #[test]
    fn inserts_new_rows_and_merges_into_existing_ones() {
        let a = acc(&[1.0, 2.0]);
        let writes: Vec<Write> = super::writes(a.clone(), Vec::new()).collect::<Result<_, _>>().unwrap();
        assert_eq!(writes.len(), 3);
        assert!(writes.iter().all(|w| matches!(w, Write::Insert { series_id: 7, .. })));

        // The minute row exists already with one sample at version 4.
        let existing = acc(&[10.0]);
        let minute = Slot { resolution: 60, bucket_start: 120 };
        let old = &existing[&(7, minute)];
        // With a row of another series on either side, which nothing writes.
        let other = |id| ((id, minute), Stored { row: old.to_row(), version: 9 });
        let stored = sorted(vec![other(8), ((7, minute), Stored { row: old.to_row(), version: 4 }), other(6)]);
        let writes: Vec<Write> = super::writes(a, stored).collect::<Result<_, _>>().unwrap();
        let update = writes.iter().find_map(|w| match w {
            Write::Update { slot, row, version, .. } if *slot == minute => Some((row, *version)),
            _ => None,
        });
        let (row, version) = update.expect("an update of the minute row");
        assert_eq!(version, 4);
        assert_eq!((row.count, row.sum, row.max), (3.0, 13.0, Some(10.0)));
        assert_eq!(writes.iter().filter(|w| matches!(w, Write::Insert { .. })).count(), 2);
        assert_eq!(writes.len(), 3, "the other series' rows are not written");
    }

    #[test]
    fn lists_hold_the_inserts_and_the_updates_apart() {
        let a = acc(&[1.0]);
        let minute = Slot { resolution: 60, bucket_start: 120 };
        let stored = vec![((7, minute), Stored { row: a[&(7, minute)].to_row(), version: 2 })];
        let lists = lists(writes(a, stored)).unwrap();
        assert_eq!(lists.writes, 3);
        assert_eq!(lists.updates.len(), 1);
        assert!(lists.updates[0].starts_with("[[7,60,120,2,") && lists.updates[0].ends_with(",2]]"), "{}", lists.updates[0]);
        assert_eq!(lists.inserts.len(), 1);
        assert_eq!(lists.inserts[0].matches("[7,").count(), 2, "{}", lists.inserts[0]);
    }
}
