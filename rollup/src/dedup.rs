//! Batches applied once, whichever archives they arrive in.
//!
//! The queue may deliver a message twice and an exporter may retry a body it
//! already sent; either way the same batch (same `batch_id`, a hash of the
//! tenant and request body plus its part number) lands in a second archive.
//! A body whose points took their receive time hashes that time too, so
//! sending it again counts again (ingest's `export::request_id`).
//! The ledger of archives cannot see that, so the rollup also records every
//! batch id it applies, in the same transaction as the points.

use proto::point::Batch;
use std::collections::HashSet;

/// The batch ids of a chunk to look up in the ledger (non-empty, once each).
pub fn ids(batches: &[Batch]) -> Vec<String> {
    let mut ids: Vec<String> = batches.iter().filter(|b| !b.batch_id.is_empty()).map(|b| b.batch_id.clone()).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Drops the batches already applied and repeats within the archive;
/// returns the ids of the batches kept, to record, and how many were
/// dropped. Batches without an id (none are written today) are kept.
pub fn fresh(batches: &mut Vec<Batch>, applied: &HashSet<String>) -> (Vec<String>, usize) {
    let before = batches.len();
    let mut seen = HashSet::new();
    batches.retain(|b| b.batch_id.is_empty() || (!applied.contains(&b.batch_id) && seen.insert(b.batch_id.clone())));
    let mut kept: Vec<String> = seen.into_iter().collect();
    kept.sort_unstable();
    (kept, before - batches.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::point::{Point, Value};

    fn batch(id: &str, v: f64) -> Batch {
        Batch {
            batch_id: id.into(),
            points: vec![Point { metric: "m".into(), value: Some(Value::Gauge(v)), ..Default::default() }],
            ..Default::default()
        }
    }

    #[test]
    fn applied_and_repeated_batches_are_dropped() {
        let mut a = vec![batch("a-0", 1.0), batch("b-0", 2.0), batch("a-0", 1.0), batch("", 3.0), batch("c-0", 4.0)];
        assert_eq!(ids(&a), ["a-0", "b-0", "c-0"]);
        let applied: HashSet<String> = ["b-0".to_string()].into();
        let (kept, dropped) = fresh(&mut a, &applied);
        assert_eq!(kept, ["a-0", "c-0"]);
        assert_eq!(dropped, 2);
        let values: Vec<f64> = a
            .iter()
            .map(|b| match b.points[0].value {
                Some(Value::Gauge(v)) => v,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(values, [1.0, 3.0, 4.0]);
    }
}
