//! Table `series`: the catalog of series, their ids, and how many each
//! metric has (for the cardinality guard).

use super::{prepare, rows};
use crate::error::{Context, RollupError};
use crate::series::Series;
use proto::aggregate::AggregateError;
use proto::d1::{num, placeholders, Db, MAX_PARAMS};
use proto::point::Kind;
use serde::Deserialize;
use std::collections::HashMap;
use worker::wasm_bindgen::JsValue;

/// A series' catalog row: its id, and the kind and unit it was created with.
#[derive(Clone, Debug, PartialEq)]
pub struct Catalog {
    pub id: i64,
    pub kind: Kind,
    pub unit: String,
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
/// that exist, by index. Each series' labels JSON is built for its
/// statement and dropped with it, and the rows come back without labels.
pub async fn lookup_series(db: &Db, series: &[(u32, &Series<'_>)]) -> Result<HashMap<u32, Catalog>, RollupError> {
    #[derive(Deserialize)]
    struct Found {
        i: f64,
        id: f64,
        kind: String,
        unit: String,
    }
    let mut out = HashMap::new();
    for batch in groups(series, usize::MAX, MAX_BATCH_BYTES, |(_, s)| s.bound_bytes()) {
        let mut selects = Vec::new();
        for chunk in groups(batch, MAX_PARAMS / 4, MAX_STATEMENT_BYTES, |(_, s)| s.bound_bytes()) {
            let sql = format!(
                "WITH k (i, tenant, metric, labels) AS (VALUES {}) \
                 SELECT k.i AS i, s.id AS id, s.kind AS kind, s.unit AS unit FROM k \
                 JOIN series s ON s.tenant = k.tenant AND s.metric = k.metric AND s.labels = k.labels",
                placeholders(chunk.len(), 4)
            );
            let params: Vec<JsValue> =
                chunk.iter().flat_map(|(i, s)| [num(f64::from(*i)), s.tenant.into(), s.metric.into(), s.json().into()]).collect();
            selects.push(prepare(db, &sql, &params)?);
        }
        for r in rows::<Found>(db, selects, "reading series ids").await? {
            let kind = Kind::parse(&r.kind).ok_or_else(|| AggregateError::Corrupt(format!("series {} has kind {:?}", r.id, r.kind)))?;
            out.insert(r.i as u32, Catalog { id: r.id as i64, kind, unit: r.unit });
        }
    }
    Ok(out)
}

/// Creates catalog rows for `series` (existing ones are left alone) and
/// returns the catalog rows of all of them: a row another writer created
/// meanwhile keeps its kind and unit.
pub async fn create_series(db: &Db, series: &[(u32, &Series<'_>)]) -> Result<HashMap<u32, Catalog>, RollupError> {
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
    let found = lookup_series(db, series).await?;
    if let Some((_, s)) = series.iter().find(|(i, _)| !found.contains_key(i)) {
        return Err(RollupError::Conflict { key: s.metric.to_owned(), reason: "series row missing after insert".into() });
    }
    Ok(found)
}

/// Catalog series per (tenant, metric), for the cardinality guard.
pub async fn series_counts(db: &Db, metrics: &[(String, String)]) -> Result<HashMap<(String, String), u64>, RollupError> {
    #[derive(Deserialize)]
    struct CountRow {
        tenant: String,
        metric: String,
        n: f64,
    }
    let mut selects = Vec::new();
    for chunk in metrics.chunks(MAX_PARAMS / 2) {
        let sql = format!(
            "SELECT tenant, metric, COUNT(*) AS n FROM series WHERE (tenant, metric) IN (VALUES {}) GROUP BY tenant, metric",
            placeholders(chunk.len(), 2)
        );
        let params: Vec<JsValue> = chunk.iter().flat_map(|(t, m)| [t.as_str().into(), m.as_str().into()]).collect();
        selects.push(prepare(db, &sql, &params)?);
    }
    let counts = rows::<CountRow>(db, selects, "counting series").await?;
    Ok(counts.into_iter().map(|r| ((r.tenant, r.metric), r.n as u64)).collect())
}
