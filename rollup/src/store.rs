//! The rollup's D1 statements. Every value is a bound parameter, bound
//! through [`proto::d1`], which also keeps the account of rows read and
//! written.

use crate::accumulate::Slot;
use crate::error::{Context, RollupError};
use crate::plan::{Stored, Write};
use crate::prepare::{StateWrite, StoredState};
use crate::retention::{Cutoffs, Expired};
use crate::series::Series;
use prost::Message;
use proto::aggregate::{AggregateError, Row};
use proto::d1::{blob, num, opt, placeholders, Db, MAX_PARAMS};
use proto::point::Kind;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use worker::wasm_bindgen::JsValue;
use worker::D1PreparedStatement;

fn prepare(db: &Db, sql: &str, params: &[JsValue]) -> Result<D1PreparedStatement, RollupError> {
    db.prepare(sql, params).during("binding a statement")
}

/// Runs `statements` as one batch and collects the rows of all of them.
async fn rows<T: DeserializeOwned>(db: &Db, statements: Vec<D1PreparedStatement>, what: &'static str) -> Result<Vec<T>, RollupError> {
    // An empty batch runs nothing (Db::batch).
    let mut out = Vec::new();
    for result in db.batch(statements).await.during(what)? {
        out.extend(result.results::<T>().during(what)?);
    }
    Ok(out)
}

/// A named value of `rollup_state`.
pub async fn state(db: &Db, name: &str) -> Result<Option<String>, RollupError> {
    #[derive(Deserialize)]
    struct V {
        value: String,
    }
    let statement = prepare(db, "SELECT value FROM rollup_state WHERE name = ?1", &[name.into()])?;
    Ok(rows::<V>(db, vec![statement], "reading rollup state").await?.pop().map(|v| v.value))
}

pub fn set_state(db: &Db, name: &str, value: &str) -> Result<D1PreparedStatement, RollupError> {
    prepare(
        db,
        "INSERT INTO rollup_state (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        &[name.into(), value.into()],
    )
}

/// Takes the run lease for `holder` until `until_ms` if it is free or has
/// expired by `now_ms`; whether it did.
pub async fn acquire_lease(db: &Db, holder: &str, now_ms: u64, until_ms: u64) -> Result<bool, RollupError> {
    #[derive(Deserialize)]
    struct H {
        holder: String,
    }
    let statement = prepare(
        db,
        "INSERT INTO rollup_lease (name, holder, until_ms) VALUES ('run', ?1, ?2) \
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms \
         WHERE rollup_lease.until_ms < ?3 RETURNING holder",
        &[holder.into(), num(until_ms as f64), num(now_ms as f64)],
    )?;
    let got = rows::<H>(db, vec![statement], "taking the lease").await?;
    Ok(got.iter().any(|h| h.holder == holder))
}

/// A statement that extends the lease to `until_ms`, or fails its batch if
/// `holder` no longer has it.
pub fn keep_lease(db: &Db, holder: &str, until_ms: u64) -> Result<D1PreparedStatement, RollupError> {
    prepare(
        db,
        "UPDATE rollup_lease SET until_ms = CASE WHEN holder = ?1 THEN ?2 ELSE -1 END WHERE name = 'run'",
        &[holder.into(), num(until_ms as f64)],
    )
}

/// A statement that gives the lease up.
pub fn release_lease(db: &Db, holder: &str) -> Result<D1PreparedStatement, RollupError> {
    prepare(db, "DELETE FROM rollup_lease WHERE name = 'run' AND holder = ?1", &[holder.into()])
}

/// Which of `keys` the ledger already holds.
pub async fn processed(db: &Db, keys: &[String]) -> Result<HashSet<String>, RollupError> {
    existing(db, "SELECT key AS k FROM processed_archives WHERE key IN", keys, "reading the ledger").await
}

/// Which of `batch_ids` have been applied (see [`crate::dedup`]).
pub async fn applied_batches(db: &Db, batch_ids: &[String]) -> Result<HashSet<String>, RollupError> {
    existing(db, "SELECT batch_id AS k FROM processed_batches WHERE batch_id IN", batch_ids, "reading applied batches").await
}

/// Which of `keys` a `SELECT <column> AS k ... IN` query (without its list)
/// finds, asked in chunks of bound parameters.
async fn existing(db: &Db, select_in: &str, keys: &[String], what: &'static str) -> Result<HashSet<String>, RollupError> {
    #[derive(Deserialize)]
    struct K {
        k: String,
    }
    let mut statements = Vec::new();
    for chunk in keys.chunks(MAX_PARAMS) {
        let sql = format!("{select_in} ({})", placeholders(chunk.len(), 1));
        let params: Vec<JsValue> = chunk.iter().map(|k| k.as_str().into()).collect();
        statements.push(prepare(db, &sql, &params)?);
    }
    Ok(rows::<K>(db, statements, what).await?.into_iter().map(|r| r.k).collect())
}

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

/// The stored rows at the given places.
pub async fn stored(db: &Db, places: &[(i64, Slot)]) -> Result<HashMap<(i64, Slot), Stored>, RollupError> {
    #[derive(Deserialize)]
    struct AggRow {
        series_id: f64,
        resolution: f64,
        bucket_start: f64,
        version: f64,
        #[serde(flatten)]
        row: Row,
    }
    let mut selects = Vec::new();
    for chunk in places.chunks(MAX_PARAMS / 3) {
        let sql = format!(
            "SELECT series_id, resolution, bucket_start, count, sum, min, max, last, last_time_ms, samples, version \
             FROM aggregates WHERE (series_id, resolution, bucket_start) IN (VALUES {})",
            placeholders(chunk.len(), 3)
        );
        let params: Vec<JsValue> =
            chunk.iter().flat_map(|(id, s)| [num(*id as f64), num(f64::from(s.resolution)), num(s.bucket_start as f64)]).collect();
        selects.push(prepare(db, &sql, &params)?);
    }
    let found = rows::<AggRow>(db, selects, "reading aggregates").await?;
    Ok(found
        .into_iter()
        .map(|r| {
            let slot = Slot { resolution: r.resolution as u32, bucket_start: r.bucket_start as i64 };
            ((r.series_id as i64, slot), Stored { row: r.row, version: r.version as i64 })
        })
        .collect())
}

/// Parameters ?1-?10 of an aggregate row: its place, then its columns.
fn row_params(series_id: i64, slot: &Slot, row: &Row) -> [JsValue; 10] {
    [
        num(series_id as f64),
        num(f64::from(slot.resolution)),
        num(slot.bucket_start as f64),
        num(row.count),
        num(row.sum),
        opt(row.min),
        opt(row.max),
        num(row.last),
        num(row.last_time_ms),
        blob(row.samples.as_deref()),
    ]
}

/// The stored cumulative states of the given series (by identity hash).
pub async fn cumulative_states(db: &Db, hashes: &[String]) -> Result<HashMap<String, StoredState>, RollupError> {
    #[derive(Deserialize)]
    struct StateRow {
        series_hash: String,
        #[serde(deserialize_with = "proto::aggregate::blob")]
        point: Option<Vec<u8>>,
        version: f64,
    }
    let mut statements = Vec::new();
    for chunk in hashes.chunks(MAX_PARAMS) {
        let sql =
            format!("SELECT series_hash, point, version FROM cumulative_state WHERE series_hash IN ({})", placeholders(chunk.len(), 1));
        let params: Vec<JsValue> = chunk.iter().map(|h| h.as_str().into()).collect();
        statements.push(prepare(db, &sql, &params)?);
    }
    let mut out = HashMap::new();
    for r in rows::<StateRow>(db, statements, "reading cumulative states").await? {
        let bytes = r.point.unwrap_or_default();
        let point = proto::point::Point::decode(bytes.as_slice())
            .map_err(|e| proto::aggregate::AggregateError::Corrupt(format!("cumulative state: {e}")))?;
        out.insert(r.series_hash, StoredState { point, version: r.version as i64 });
    }
    Ok(out)
}

/// Applies a chunk's writes and records its batches in the ledger (and,
/// for the archive's last chunk, the archive), all in one transaction:
/// either every row and the ledger entries change, or nothing does. A batch id another run recorded meanwhile fails
/// the transaction (primary key), so a batch is never applied twice.
#[allow(clippy::too_many_arguments)] // one transaction's parts; storage v2 splits this module by table
pub async fn apply(
    db: &Db,
    lease: D1PreparedStatement,
    writes: &[Write],
    states: &[StateWrite],
    archive_key: &str,
    batch_ids: &[String],
    late_tenants: &[String],
    finished: Option<u64>,
    now_ms: u64,
) -> Result<(), RollupError> {
    let mut statements = Vec::with_capacity(writes.len() + 2);
    statements.push(lease);
    for w in writes {
        statements.push(match w {
            Write::Insert { series_id, slot, row } => prepare(
                db,
                "INSERT INTO aggregates (series_id, resolution, bucket_start, count, sum, min, max, last, last_time_ms, samples, version) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 1)",
                &row_params(*series_id, slot, row),
            )?,
            // A version other than the one read makes the CASE yield 0, which
            // the CHECK (version >= 1) rejects: the batch rolls back.
            Write::Update { series_id, slot, row, version } => {
                let mut params = row_params(*series_id, slot, row).to_vec();
                params.push(num(*version as f64));
                prepare(
                    db,
                    "UPDATE aggregates SET count = ?4, sum = ?5, min = ?6, max = ?7, last = ?8, last_time_ms = ?9, samples = ?10, \
                     version = CASE WHEN version = ?11 THEN version + 1 ELSE 0 END \
                     WHERE series_id = ?1 AND resolution = ?2 AND bucket_start = ?3",
                    &params,
                )?
            }
        });
    }
    for s in states {
        let point = s.point.encode_to_vec();
        statements.push(match s.version {
            None => prepare(
                db,
                "INSERT INTO cumulative_state (series_hash, point, version) VALUES (?1, ?2, 1)",
                &[s.series_hash.as_str().into(), blob(Some(&point))],
            )?,
            Some(v) => prepare(
                db,
                "UPDATE cumulative_state SET point = ?2, version = CASE WHEN version = ?3 THEN version + 1 ELSE 0 END \
                 WHERE series_hash = ?1",
                &[s.series_hash.as_str().into(), blob(Some(&point)), num(v as f64)],
            )?,
        });
    }
    for chunk in batch_ids.chunks(MAX_PARAMS / 2) {
        let sql = format!("INSERT INTO processed_batches (batch_id, archive_key) VALUES {}", placeholders(chunk.len(), 2));
        let params: Vec<JsValue> = chunk.iter().flat_map(|id| [id.as_str().into(), archive_key.into()]).collect();
        statements.push(prepare(db, &sql, &params)?);
    }
    // In the same transaction as the writes, so dashboard-api never caches
    // under the new generation a response computed before them.
    for tenant in late_tenants {
        statements.push(prepare(
            db,
            "INSERT INTO cache_generation (tenant, generation) VALUES (?1, 1) \
             ON CONFLICT (tenant) DO UPDATE SET generation = generation + 1",
            &[tenant.as_str().into()],
        )?);
    }
    // The archive's last chunk records it (with all its points) and clears
    // any failures it had before.
    if let Some(points) = finished {
        statements.push(prepare(
            db,
            "INSERT INTO processed_archives (key, points, processed_ms) VALUES (?1, ?2, ?3)",
            &[archive_key.into(), num(points as f64), num(now_ms as f64)],
        )?);
        statements.push(prepare(db, "DELETE FROM archive_failures WHERE key = ?1", &[archive_key.into()])?);
    }
    db.batch(statements).await.map_err(|e| RollupError::Apply { key: archive_key.to_owned(), reason: e.to_string() })?;
    Ok(())
}

/// Deletes at most `limit` expired rows from each resolution of
/// `aggregates` and from each ledger table, in one batch. Ledger entries go
/// only once they are older than the dedup window and behind `cursor`, so
/// no archive they cover can be listed again.
pub async fn expire(db: &Db, cutoffs: &Cutoffs, cursor: Option<&str>, limit: u32) -> Result<Expired, RollupError> {
    let limit_js = num(f64::from(limit));
    let mut statements = Vec::new();
    for (resolution, first_kept) in cutoffs.buckets {
        statements.push(prepare(
            db,
            "DELETE FROM aggregates WHERE (series_id, resolution, bucket_start) IN \
             (SELECT series_id, resolution, bucket_start FROM aggregates WHERE resolution = ?1 AND bucket_start < ?2 LIMIT ?3)",
            &[num(f64::from(resolution)), num(first_kept as f64), limit_js.clone()],
        )?);
    }
    let aggregate_statements = statements.len();
    // Nothing is behind the cursor until it exists.
    if let Some(cursor) = cursor {
        let window = format!("{}{:013}", proto::archive::KEY_PREFIX, cutoffs.ledger_ms);
        let before = cursor.min(window.as_str());
        statements.push(prepare(
            db,
            "DELETE FROM processed_batches WHERE batch_id IN \
             (SELECT batch_id FROM processed_batches WHERE archive_key < ?1 LIMIT ?2)",
            &[before.into(), limit_js.clone()],
        )?);
        statements.push(prepare(
            db,
            "DELETE FROM processed_archives WHERE key IN (SELECT key FROM processed_archives WHERE key < ?1 LIMIT ?2)",
            &[before.into(), limit_js],
        )?);
    }
    let mut out = Expired::default();
    for (i, result) in db.batch(statements).await.during("deleting expired rows")?.iter().enumerate() {
        let changes = result.meta().during("deleting expired rows")?.and_then(|m| m.changes).unwrap_or(0) as u64;
        if i < aggregate_statements {
            out.aggregates += changes;
        } else {
            out.ledger += changes;
        }
        out.more |= changes >= u64::from(limit);
    }
    Ok(out)
}

/// Counts a failed run of an archive: the consecutive runs it has failed
/// with this `error` (1 if it failed another way before).
pub async fn record_failure(db: &Db, key: &str, error: &str, now_ms: u64) -> Result<u32, RollupError> {
    #[derive(Deserialize)]
    struct Runs {
        runs: f64,
    }
    let statement = prepare(
        db,
        "INSERT INTO archive_failures (key, error, runs, first_ms, last_ms) VALUES (?1, ?2, 1, ?3, ?3) \
         ON CONFLICT (key) DO UPDATE SET runs = CASE WHEN archive_failures.error = excluded.error THEN archive_failures.runs + 1 ELSE 1 END, \
         error = excluded.error, last_ms = excluded.last_ms RETURNING runs",
        &[key.into(), error.into(), num(now_ms as f64)],
    )?;
    let runs = rows::<Runs>(db, vec![statement], "recording a failed archive").await?;
    Ok(runs.first().map_or(1, |r| r.runs as u32))
}

/// Records that `key` was moved to quarantine: marked, and entered in the
/// ledger of processed archives (with no points) so that the cursor moves
/// past it whether or not the original could be deleted.
pub async fn quarantined(db: &Db, key: &str, now_ms: u64) -> Result<(), RollupError> {
    db.batch(vec![
        prepare(db, "UPDATE archive_failures SET quarantined_ms = ?2 WHERE key = ?1", &[key.into(), num(now_ms as f64)])?,
        prepare(
            db,
            "INSERT OR IGNORE INTO processed_archives (key, points, processed_ms) VALUES (?1, 0, ?2)",
            &[key.into(), num(now_ms as f64)],
        )?,
    ])
    .await
    .during("recording a quarantined archive")?;
    Ok(())
}

/// An archive that failed, as `/status` lists it.
#[derive(Debug, Deserialize, serde::Serialize)]
pub struct Failure {
    pub key: String,
    pub error: String,
    pub runs: f64,
    pub first_ms: f64,
    pub last_ms: f64,
    pub quarantined_ms: Option<f64>,
}

/// The most recent failed archives, quarantined or still failing, and how
/// many are quarantined in all.
pub async fn failures(db: &Db, limit: u32) -> Result<(Vec<Failure>, u64), RollupError> {
    #[derive(Deserialize)]
    struct N {
        n: f64,
    }
    let results = db
        .batch(vec![
            prepare(
                db,
                "SELECT key, error, runs, first_ms, last_ms, quarantined_ms FROM archive_failures ORDER BY last_ms DESC LIMIT ?1",
                &[num(f64::from(limit))],
            )?,
            prepare(db, "SELECT COUNT(*) AS n FROM archive_failures WHERE quarantined_ms IS NOT NULL", &[])?,
        ])
        .await
        .during("reading failed archives")?;
    let list = results.first().map(|r| r.results::<Failure>()).transpose().during("reading failed archives")?.unwrap_or_default();
    let n = results.get(1).map(|r| r.results::<N>()).transpose().during("reading failed archives")?.unwrap_or_default();
    Ok((list, n.first().map_or(0, |r| r.n as u64)))
}
