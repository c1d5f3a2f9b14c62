//! The ledger: which archives and batches are applied (tables
//! `ledger_archives` and `ledger_batches`, one row each per commit, and
//! per hour of data for batches; migration 0009).
//!
//! Until 0009 the rollup wrote a row per archive (`processed_archives`) and
//! a row plus an index entry per batch (`processed_batches`). Those tables
//! are still read, side by side with the new ones, and emptied by
//! retention, so that an upgrade forgets nothing within the dedup window.

use super::{prepare, rows};
use crate::error::RollupError;
use crate::pending::Pending;
use crate::retention::Cutoffs;
use proto::d1::{json_lists, num, Db};
use serde::Deserialize;
use serde_json::json;
use std::collections::HashSet;
use worker::D1PreparedStatement;

#[derive(Deserialize)]
struct K {
    k: String,
}

/// Which of `keys` (sorted, one listing page) the ledger holds.
pub async fn processed(db: &Db, keys: &[String]) -> Result<HashSet<String>, RollupError> {
    let Some(first) = keys.first() else { return Ok(HashSet::new()) };
    let mut statements = Vec::new();
    for list in json_lists(keys, |k| k.as_str().into()) {
        statements.push(prepare(
            db,
            "SELECT j.value AS k FROM ledger_archives a, json_each(a.keys) j \
             WHERE a.last_key >= ?1 AND j.value IN (SELECT value FROM json_each(?2))",
            &[first.as_str().into(), list.clone().into()],
        )?);
        statements.push(prepare(
            db,
            "SELECT key AS k FROM processed_archives WHERE key IN (SELECT value FROM json_each(?1))",
            &[list.into()],
        )?);
    }
    Ok(rows::<K>(db, statements, "reading the ledger").await?.into_iter().map(|r| r.k).collect())
}

/// Which of `batches` (data hour, batch id) have been applied.
pub async fn applied(db: &Db, batches: &[(i64, &str)]) -> Result<HashSet<String>, RollupError> {
    if batches.is_empty() {
        return Ok(HashSet::new());
    }
    let mut hours: Vec<i64> = batches.iter().map(|(h, _)| *h).collect();
    hours.sort_unstable();
    hours.dedup();
    let hours = serde_json::Value::from(hours).to_string();
    let mut statements = Vec::new();
    for list in json_lists(batches, |(_, id)| (*id).into()) {
        statements.push(prepare(
            db,
            "SELECT j.value AS k FROM ledger_batches b, json_each(b.ids) j \
             WHERE b.data_hour IN (SELECT value FROM json_each(?1)) AND j.value IN (SELECT value FROM json_each(?2))",
            &[hours.as_str().into(), list.clone().into()],
        )?);
        statements.push(prepare(
            db,
            "SELECT batch_id AS k FROM processed_batches WHERE batch_id IN (SELECT value FROM json_each(?1))",
            &[list.into()],
        )?);
    }
    Ok(rows::<K>(db, statements, "reading applied batches").await?.into_iter().map(|r| r.k).collect())
}

/// The ledger rows of a commit: one for the archives it applied whole (if
/// any), one per hour of data for its batches; and the failures of those
/// archives, cleared.
pub fn entries(db: &Db, commit_id: &str, pending: &Pending, now_ms: u64) -> Result<Vec<D1PreparedStatement>, RollupError> {
    let mut out = Vec::new();
    if let Some(last) = pending.archives.iter().max() {
        let keys = json!(pending.archives).to_string();
        out.push(prepare(
            db,
            "INSERT INTO ledger_archives (last_key, commit_id, keys, points, committed_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            &[last.as_str().into(), commit_id.into(), keys.as_str().into(), num(pending.points as f64), num(now_ms as f64)],
        )?);
        out.push(prepare(db, "DELETE FROM archive_failures WHERE key IN (SELECT value FROM json_each(?1))", &[keys.into()])?);
    }
    for (hour, ids) in &pending.batches {
        out.push(prepare(
            db,
            "INSERT INTO ledger_batches (data_hour, commit_id, ids, committed_ms) VALUES (?1, ?2, ?3, ?4)",
            &[num(*hour as f64), commit_id.into(), json!(ids).to_string().into(), num(now_ms as f64)],
        )?);
    }
    Ok(out)
}

/// Records `key` as processed with no points: a quarantined archive, which
/// the cursor may then move past.
pub fn set_aside(db: &Db, key: &str, now_ms: u64) -> Result<D1PreparedStatement, RollupError> {
    prepare(
        db,
        "INSERT OR IGNORE INTO ledger_archives (last_key, commit_id, keys, points, committed_ms) VALUES (?1, 'quarantine', ?2, 0, ?3)",
        &[key.into(), json!([key]).to_string().into(), num(now_ms as f64)],
    )
}

/// Statements that delete at most `limit` ledger rows from each table: only
/// entries older than the dedup window and behind `cursor`, so that no
/// archive they cover can be listed again.
pub fn expire(db: &Db, cutoffs: &Cutoffs, cursor: &str, limit: u32) -> Result<Vec<D1PreparedStatement>, RollupError> {
    let window = format!("{}{:013}", proto::archive::KEY_PREFIX, cutoffs.ledger_ms);
    let before = cursor.min(window.as_str());
    let limit = num(f64::from(limit));
    let ledger_ms = num(cutoffs.ledger_ms as f64);
    Ok(vec![
        prepare(
            db,
            "DELETE FROM ledger_archives WHERE (last_key, commit_id) IN \
             (SELECT last_key, commit_id FROM ledger_archives WHERE last_key < ?1 LIMIT ?2)",
            &[before.into(), limit.clone()],
        )?,
        prepare(
            db,
            "DELETE FROM ledger_batches WHERE (data_hour, commit_id) IN \
             (SELECT data_hour, commit_id FROM ledger_batches WHERE committed_ms < ?1 LIMIT ?2)",
            &[ledger_ms, limit.clone()],
        )?,
        prepare(
            db,
            "DELETE FROM processed_batches WHERE batch_id IN \
             (SELECT batch_id FROM processed_batches WHERE archive_key < ?1 LIMIT ?2)",
            &[before.into(), limit.clone()],
        )?,
        prepare(
            db,
            "DELETE FROM processed_archives WHERE key IN (SELECT key FROM processed_archives WHERE key < ?1 LIMIT ?2)",
            &[before.into(), limit],
        )?,
    ])
}
