//! Table `aggregates`: one row per series, resolution and bucket.

use super::{prepare, rows};
use crate::accumulate::Slot;
use crate::error::RollupError;
use crate::plan::{sorted, Lists, Stored, StoredRows};
use crate::retention::Cutoffs;
use proto::aggregate::Row;
use proto::d1::{json_lists, num, real_sql, Db};
use serde::Deserialize;
use serde_json::json;
use worker::D1PreparedStatement;

/// The stored rows at the given places, sorted by place.
pub async fn stored(db: &Db, places: &[(i64, Slot)]) -> Result<StoredRows, RollupError> {
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
    for list in json_lists(places, |(id, s)| json!([id, s.resolution, s.bucket_start])) {
        selects.push(prepare(
            db,
            "SELECT a.series_id, a.resolution, a.bucket_start, a.count, a.sum, a.min, a.max, a.last, a.last_time_ms, a.samples, a.version \
             FROM json_each(?1) j JOIN aggregates a \
             ON a.series_id = j.value->>0 AND a.resolution = j.value->>1 AND a.bucket_start = j.value->>2",
            &[list.into()],
        )?);
    }
    let found = rows::<AggRow>(db, selects, "reading aggregates").await?;
    Ok(sorted(
        found
            .into_iter()
            .map(|r| {
                let slot = Slot { resolution: r.resolution as u32, bucket_start: r.bucket_start as i64 };
                ((r.series_id as i64, slot), Stored { row: r.row, version: r.version as i64 })
            })
            .collect(),
    ))
}

/// The columns of a [`crate::plan::Write::json`] list, read once per item: the REALs
/// are rebuilt from their `[m, e]` pairs.
fn list_columns() -> &'static str {
    "WITH u AS MATERIALIZED (SELECT value->>0 AS id, value->>1 AS r, value->>2 AS b, value->>3 AS c, \
     value->>4 AS sm, value->>5 AS se, value->>6 AS mnm, value->>7 AS mne, value->>8 AS mxm, value->>9 AS mxe, \
     value->>10 AS lm, value->>11 AS le, value->>12 AS lt, value->>13 AS h, value->>14 AS v FROM json_each(?1))"
}

/// Statements that make the planned writes, a megabyte of rows each:
/// inserts fail if another writer inserted the row meanwhile, and updates
/// apply only from the version read; either failure rolls the whole
/// transaction back.
pub fn writes(db: &Db, lists: Lists) -> Result<Vec<D1PreparedStatement>, RollupError> {
    let reals = [real_sql("sm", "se"), real_sql("mnm", "mne"), real_sql("mxm", "mxe"), real_sql("lm", "le")];
    let [sum, min, max, last] = &reals;
    let insert = format!(
        "{} INSERT INTO aggregates (series_id, resolution, bucket_start, count, sum, min, max, last, last_time_ms, samples, version) \
         SELECT id, r, b, c, {sum}, {min}, {max}, {last}, lt, unhex(h), 1 FROM u",
        list_columns()
    );
    // A version other than the one read makes the CASE yield 0, which the
    // CHECK (version >= 1) rejects.
    let update = format!(
        "{} UPDATE aggregates SET count = u.c, sum = {sum}, min = {min}, max = {max}, last = {last}, last_time_ms = u.lt, \
         samples = unhex(u.h), version = CASE WHEN aggregates.version = u.v THEN aggregates.version + 1 ELSE 0 END \
         FROM u WHERE aggregates.series_id = u.id AND aggregates.resolution = u.r AND aggregates.bucket_start = u.b",
        list_columns()
    );
    let mut out = Vec::new();
    // Each list is copied into the statement and dropped here.
    for list in lists.inserts {
        out.push(prepare(db, &insert, &[list.into()])?);
    }
    for list in lists.updates {
        out.push(prepare(db, &update, &[list.into()])?);
    }
    Ok(out)
}

/// Statements that delete at most `limit` expired rows of each resolution.
pub fn expire(db: &Db, cutoffs: &Cutoffs, limit: u32) -> Result<Vec<D1PreparedStatement>, RollupError> {
    cutoffs
        .buckets
        .iter()
        .map(|&(resolution, first_kept)| {
            prepare(
                db,
                "DELETE FROM aggregates WHERE (series_id, resolution, bucket_start) IN \
                 (SELECT series_id, resolution, bucket_start FROM aggregates WHERE resolution = ?1 AND bucket_start < ?2 LIMIT ?3)",
                &[num(f64::from(resolution)), num(first_kept as f64), num(f64::from(limit))],
            )
        })
        .collect()
}
