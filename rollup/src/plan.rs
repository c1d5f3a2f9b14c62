//! Merging new aggregates into stored rows: which rows to insert, which to
//! update and at what version. Pure, so the merge rules are tested natively.

use crate::accumulate::{Accumulator, Slot};
use proto::aggregate::{Aggregate, AggregateError, Row};
use std::collections::HashMap;

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

/// The writes that merge `acc` into the stored rows. Every series of `acc`
/// must have a catalog id in `ids`.
pub fn plan(acc: &Accumulator, ids: &HashMap<u32, i64>, stored: &HashMap<(i64, Slot), Stored>) -> Result<Vec<Write>, AggregateError> {
    let mut writes = Vec::new();
    for (series, slots) in &acc.series {
        let series_id = *ids.get(series).ok_or_else(|| AggregateError::Corrupt(format!("series {series} of the chunk has no id")))?;
        for (slot, fresh) in slots {
            match stored.get(&(series_id, *slot)) {
                None => writes.push(Write::Insert { series_id, slot: *slot, row: fresh.to_row() }),
                Some(s) => {
                    let mut merged = Aggregate::from_row(&s.row)?;
                    merged.merge(fresh);
                    writes.push(Write::Update { series_id, slot: *slot, row: merged.to_row(), version: s.version });
                }
            }
        }
    }
    Ok(writes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::point::{Kind, Point, Value};

    fn acc(values: &[f64]) -> Accumulator {
        let mut acc = Accumulator::default();
        for &v in values {
            let p = Point { metric: "m".into(), time_unix_nano: 120_000_000_000, value: Some(Value::Gauge(v)), ..Default::default() };
            acc.add_point(0, Kind::Gauge, "", &p);
        }
        acc
    }

    #[test]
    fn inserts_new_rows_and_merges_into_existing_ones() {
        let a = acc(&[1.0, 2.0]);
        let ids = HashMap::from([(0, 7)]);
        let writes = plan(&a, &ids, &HashMap::new()).unwrap();
        assert_eq!(writes.len(), 3);
        assert!(writes.iter().all(|w| matches!(w, Write::Insert { series_id: 7, .. })));

        // The minute row exists already with one sample at version 4.
        let existing = acc(&[10.0]);
        let minute = Slot { resolution: 60, bucket_start: 120 };
        let old = &existing.series[&0][&minute];
        let stored = HashMap::from([((7, minute), Stored { row: old.to_row(), version: 4 })]);
        let writes = plan(&a, &ids, &stored).unwrap();
        let update = writes.iter().find_map(|w| match w {
            Write::Update { slot, row, version, .. } if *slot == minute => Some((row, *version)),
            _ => None,
        });
        let (row, version) = update.expect("an update of the minute row");
        assert_eq!(version, 4);
        assert_eq!((row.count, row.sum, row.max), (3.0, 13.0, Some(10.0)));
        assert_eq!(writes.iter().filter(|w| matches!(w, Write::Insert { .. })).count(), 2);
    }

    #[test]
    fn a_series_without_an_id_is_an_error() {
        assert!(plan(&acc(&[1.0]), &HashMap::new(), &HashMap::new()).is_err());
    }
}
