//! Tables `head` and `blocks` (migration 0011): the minute level. A commit
//! inserts its head parts; compaction replaces a closed hour's head rows of
//! one metric by that hour's blocks in one transaction; retention deletes
//! blocks whose hour is past the minute retention.

use super::{prepare, rows};
use crate::error::{Context, RollupError};
use crate::head::{Block, Part, HOUR_S};
use proto::d1::{hex, json_lists, num, Db};
use serde::Deserialize;
use serde_json::json;
use worker::D1PreparedStatement;

/// A head part as one item of the list [`writes`] binds.
pub fn item(p: &Part) -> serde_json::Value {
    json!([p.hour_start, p.tenant, p.metric, p.part, hex(&p.body)])
}

/// Statements that insert a commit's head parts (lists of [`item`]s).
/// A part's key holds the commit id, so a commit cannot be inserted twice.
pub fn writes(db: &Db, commit_id: &str, lists: Vec<String>) -> Result<Vec<D1PreparedStatement>, RollupError> {
    lists
        .into_iter()
        .map(|list| {
            prepare(
                db,
                "INSERT INTO head (hour_start, tenant, prom_name, commit_id, part, body) \
                 SELECT value->>0, value->>1, value->>2, ?2, value->>3, unhex(value->>4) FROM json_each(?1)",
                &[list.into(), commit_id.into()],
            )
        })
        .collect()
}

/// The head rows of one metric's hour (`metric`: its exposed name).
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Group {
    pub hour_start: i64,
    pub tenant: String,
    pub metric: String,
}

/// At most `limit` groups of head rows whose hour starts at or before
/// `last_hour`, oldest first.
pub async fn due(db: &Db, last_hour: i64, limit: u32) -> Result<Vec<Group>, RollupError> {
    #[derive(Deserialize)]
    struct G {
        hour_start: f64,
        tenant: String,
        metric: String,
    }
    let statement = prepare(
        db,
        "SELECT DISTINCT hour_start, tenant, prom_name AS metric FROM head WHERE hour_start <= ?1 ORDER BY hour_start, tenant, prom_name LIMIT ?2",
        &[num(last_hour as f64), num(f64::from(limit))],
    )?;
    Ok(rows::<G>(db, vec![statement], "listing hours to compact")
        .await?
        .into_iter()
        .map(|g| Group { hour_start: g.hour_start as i64, tenant: g.tenant, metric: g.metric })
        .collect())
}

/// A head row's key within its group, and its body.
pub struct HeadRow {
    pub commit_id: String,
    pub part: i64,
    pub body: Vec<u8>,
}

/// Every head row of `group`.
pub async fn group_rows(db: &Db, group: &Group) -> Result<Vec<HeadRow>, RollupError> {
    #[derive(Deserialize)]
    struct R {
        commit_id: String,
        part: f64,
        #[serde(deserialize_with = "proto::aggregate::blob")]
        body: Option<Vec<u8>>,
    }
    let statement = prepare(
        db,
        "SELECT commit_id, part, body FROM head WHERE hour_start = ?1 AND tenant = ?2 AND prom_name = ?3",
        &[num(group.hour_start as f64), group.tenant.as_str().into(), group.metric.as_str().into()],
    )?;
    Ok(rows::<R>(db, vec![statement], "reading head rows")
        .await?
        .into_iter()
        .map(|r| HeadRow { commit_id: r.commit_id, part: r.part as i64, body: r.body.unwrap_or_default() })
        .collect())
}

/// Replaces the head rows `keys` of `group` by `blocks`, in one
/// transaction behind `lease`: either the blocks are written and the rows
/// gone, or nothing changed (so nothing is counted twice).
pub async fn compacted(
    db: &Db,
    lease: D1PreparedStatement,
    group: &Group,
    keys: &[(String, i64)],
    blocks: Vec<Block>,
) -> Result<(), RollupError> {
    let hour = num(group.hour_start as f64);
    let mut statements = vec![lease];
    for list in json_lists(blocks, |b| json!([b.series_id, b.seq, hex(&b.body)])) {
        statements.push(prepare(
            db,
            "INSERT INTO blocks (hour_start, series_id, seq, body) \
             SELECT ?1, value->>0, value->>1, unhex(value->>2) FROM json_each(?2)",
            &[hour.clone(), list.into()],
        )?);
    }
    for list in json_lists(keys, |(c, p)| json!([c, p])) {
        statements.push(prepare(
            db,
            "DELETE FROM head WHERE hour_start = ?1 AND tenant = ?2 AND prom_name = ?3 \
             AND (commit_id, part) IN (SELECT value->>0, value->>1 FROM json_each(?4))",
            &[hour.clone(), group.tenant.as_str().into(), group.metric.as_str().into(), list.into()],
        )?);
    }
    db.batch(statements).await.during("compacting an hour")?;
    Ok(())
}

/// A statement that deletes at most `limit` blocks whose whole hour is
/// before `first_kept_minute`.
pub fn expire(db: &Db, first_kept_minute: i64, limit: u32) -> Result<D1PreparedStatement, RollupError> {
    prepare(
        db,
        "DELETE FROM blocks WHERE (hour_start, series_id, seq) IN \
         (SELECT hour_start, series_id, seq FROM blocks WHERE hour_start <= ?1 LIMIT ?2)",
        &[num((first_kept_minute - HOUR_S) as f64), num(f64::from(limit))],
    )
}
