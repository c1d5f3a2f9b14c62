//! Table `series`: the catalog of series, their ids, how many of each
//! metric are active (for the cardinality guard), and the sweep that
//! deletes series with no kept bucket.
//!
//! A series is *active* while it has an hour bucket starting within the
//! minute retention (rounded down to the hour; hour rows are the finest
//! that are written every run, minutes go to the head): a label value that
//! churns (a pod name, a deploy id) stops counting against its metric's
//! limit two days (by default) after its last point, and its catalog row
//! goes once its last bucket has expired.

use super::{prepare, rows};
use crate::error::{Context, RollupError};
use crate::series::Series;
use proto::aggregate::AggregateError;
use proto::d1::{num, placeholders, Db, MAX_PARAMS};
use proto::point::Kind;
use serde::Deserialize;
use std::collections::HashMap;
use worker::wasm_bindgen::JsValue;
use worker::D1PreparedStatement;

/// A series' catalog row: its id, and the kind and unit it was created with.
#[derive(Clone, Debug, PartialEq)]
pub struct Catalog {
    pub id: i64,
    pub kind: Kind,
    pub unit: String,
    /// Whether it had an hour bucket from `first_minute`'s hour on when read, or
    /// was admitted by the guard this run.
    pub active: bool,
}

/// SQL that is true for a series `s` with an hour bucket starting at or
/// after the bound parameter ([`active_from`]): the series is active.
const ACTIVE: &str = "EXISTS (SELECT 1 FROM aggregates a WHERE a.series_id = s.id AND a.resolution = 3600 AND a.bucket_start >= ?)";

/// The bound value of [`ACTIVE`] for the first kept minute.
fn active_from(first_minute: i64) -> JsValue {
    num((first_minute - first_minute.rem_euclid(3600)) as f64)
}

/// Bytes of bound values one statement, and one batch of statements, of
/// the catalog lookups carry at most: a series' labels can be 74 KB.
const MAX_STATEMENT_BYTES: usize = 256 * 1024;
const MAX_BATCH_BYTES: usize = 2 << 20;

/// `items` in consecutive groups of at most `per` items and `max_bytes`
/// bytes (at least one item each).
fn groups<T>(items: &[T], per: usize, max_bytes: usize, bytes: impl Fn(&T) -> usize) -> Vec<&[T]> {
    let (mut out, mut start, mut size) = (Vec::new(), 0, 0);
    for (i, item) in items.iter().enumerate() {
        let b = bytes(item);
        if i > start && (i - start == per || size + b > max_bytes) {
            out.push(&items[start..i]);
            (start, size) = (i, 0);
        }
        size += b;
    }
    if start < items.len() {
        out.push(&items[start..]);
    }
    out
}

/// Catalog rows of those of `series` (by index into the chunk's series)
/// that exist, by index, with whether each has a minute bucket starting at
/// or after `first_minute`. Each series' labels JSON is built for its
/// statement and dropped with it, and the rows come back without labels.
pub async fn lookup_series(db: &Db, series: &[(u32, &Series<'_>)], first_minute: i64) -> Result<HashMap<u32, Catalog>, RollupError> {
    #[derive(Deserialize)]
    struct Found {
        i: f64,
        id: f64,
        kind: String,
        unit: String,
        active: f64,
    }
    let mut out = HashMap::new();
    for batch in groups(series, usize::MAX, MAX_BATCH_BYTES, |(_, s)| s.bound_bytes()) {
        let mut selects = Vec::new();
        // Four values per series, and the first minute.
        for chunk in groups(batch, (MAX_PARAMS - 1) / 4, MAX_STATEMENT_BYTES, |(_, s)| s.bound_bytes()) {
            let sql = format!(
                "WITH k (i, tenant, metric, labels) AS (VALUES {}) \
                 SELECT k.i AS i, s.id AS id, s.kind AS kind, s.unit AS unit, {ACTIVE} AS active FROM k \
                 JOIN series s ON s.tenant = k.tenant AND s.metric = k.metric AND s.labels = k.labels",
                placeholders(chunk.len(), 4)
            );
            let mut params: Vec<JsValue> =
                chunk.iter().flat_map(|(i, s)| [num(f64::from(*i)), s.tenant.into(), s.metric.into(), s.json().into()]).collect();
            params.push(active_from(first_minute));
            selects.push(prepare(db, &sql, &params)?);
        }
        for r in rows::<Found>(db, selects, "reading series ids").await? {
            let kind = Kind::parse(&r.kind).ok_or_else(|| AggregateError::Corrupt(format!("series {} has kind {:?}", r.id, r.kind)))?;
            out.insert(r.i as u32, Catalog { id: r.id as i64, kind, unit: r.unit, active: r.active != 0.0 });
        }
    }
    Ok(out)
}

/// Creates catalog rows for `series` (existing ones are left alone) and
/// returns the catalog rows of all of them: a row another writer created
/// meanwhile keeps its kind and unit.
pub async fn create_series(db: &Db, series: &[(u32, &Series<'_>)], first_minute: i64) -> Result<HashMap<u32, Catalog>, RollupError> {
    if series.is_empty() {
        return Ok(HashMap::new());
    }
    for batch in groups(series, usize::MAX, MAX_BATCH_BYTES, |(_, s)| s.bound_bytes()) {
        let mut inserts = Vec::new();
        for chunk in groups(batch, MAX_PARAMS / 6, MAX_STATEMENT_BYTES, |(_, s)| s.bound_bytes()) {
            let sql = format!(
                "INSERT OR IGNORE INTO series (tenant, metric, prom_name, labels, kind, unit) VALUES {}",
                placeholders(chunk.len(), 6)
            );
            let params: Vec<JsValue> = chunk
                .iter()
                .flat_map(|(_, s)| {
                    [
                        s.tenant.into(),
                        s.metric.into(),
                        proto::names::prom_name(s.metric).into(),
                        s.json().into(),
                        s.kind.as_str().into(),
                        s.unit.into(),
                    ]
                })
                .collect();
            inserts.push(prepare(db, &sql, &params)?);
        }
        db.batch(inserts).await.during("creating series")?;
    }
    let found = lookup_series(db, series, first_minute).await?;
    if let Some((_, s)) = series.iter().find(|(i, _)| !found.contains_key(i)) {
        return Err(RollupError::Conflict { key: s.metric.to_owned(), reason: "series row missing after insert".into() });
    }
    Ok(found)
}

/// Active catalog series per (tenant, metric), for the cardinality guard:
/// those with a minute bucket starting at or after `first_minute`, leaving
/// out the ids in `admitted` (the series this run admitted, which its
/// caller counts itself, committed or not). Each statement leaves out only
/// its own metrics' ids: at most its 49 metrics' limits of them.
pub async fn active_counts(
    db: &Db,
    metrics: &[(String, String)],
    first_minute: i64,
    admitted: &HashMap<(String, String), Vec<i64>>,
) -> Result<HashMap<(String, String), u64>, RollupError> {
    #[derive(Deserialize)]
    struct CountRow {
        tenant: String,
        metric: String,
        n: f64,
    }
    let mut selects = Vec::new();
    // Two values per metric, the first minute and the ids left out.
    for chunk in metrics.chunks((MAX_PARAMS - 2) / 2) {
        let sql = format!(
            "SELECT s.tenant AS tenant, s.metric AS metric, COUNT(*) AS n FROM series s \
             WHERE (s.tenant, s.metric) IN (VALUES {}) AND {ACTIVE} \
             AND s.id NOT IN (SELECT value FROM json_each(?)) GROUP BY s.tenant, s.metric",
            placeholders(chunk.len(), 2)
        );
        let except: Vec<i64> = chunk.iter().filter_map(|m| admitted.get(m)).flatten().copied().collect();
        let mut params: Vec<JsValue> = chunk.iter().flat_map(|(t, m)| [t.as_str().into(), m.as_str().into()]).collect();
        params.push(active_from(first_minute));
        params.push(serde_json::to_string(&except).unwrap_or_else(|_| "[]".into()).into());
        selects.push(prepare(db, &sql, &params)?);
    }
    let counts = rows::<CountRow>(db, selects, "counting active series").await?;
    Ok(counts.into_iter().map(|r| ((r.tenant, r.metric), r.n as u64)).collect())
}

/// Series the sweep looks at per run.
pub const SWEEP_SERIES: u32 = 1_000;

/// Statements of one step of the sweep: the catalog's next [`SWEEP_SERIES`]
/// series after id `after` are looked at, and those with no bucket of any
/// resolution are deleted. The first statement answers the largest id
/// looked at (`last`; none once the sweep has passed the end, when it
/// starts again from the beginning), the second deletes. Run after a run's
/// commits and behind its lease, so a series this run or another created
/// for a commit still to come is never taken.
pub fn sweep(db: &Db, after: i64) -> Result<[D1PreparedStatement; 2], RollupError> {
    let slice = "SELECT id FROM series WHERE id > ?1 ORDER BY id LIMIT ?2";
    let params = [num(after as f64), num(f64::from(SWEEP_SERIES))];
    Ok([
        prepare(db, &format!("SELECT MAX(id) AS last FROM ({slice})"), &params)?,
        prepare(
            db,
            &format!(
                "DELETE FROM series WHERE id IN (SELECT s.id FROM ({slice}) s \
                 WHERE NOT EXISTS (SELECT 1 FROM aggregates a WHERE a.series_id = s.id))"
            ),
            &params,
        )?,
    ])
}
