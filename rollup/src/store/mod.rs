//! The rollup's D1 statements, one module per table (or pair of ledger
//! tables). Every value is a bound parameter, bound through [`proto::d1`],
//! which also keeps the account of rows read and written; long lists go
//! as one JSON parameter read with `json_each`.

pub mod aggregates;
pub mod catalog;
pub mod cumulative;
pub mod failures;
pub mod head;
pub mod lease;
pub mod ledger;

use crate::error::{Context, RollupError};
use crate::pending::Pending;
use crate::plan::Lists;
use crate::retention::{Cutoffs, Expired};
use proto::d1::{num, Db};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use worker::wasm_bindgen::JsValue;
use worker::D1PreparedStatement;

pub use failures::{failures, record_failure};

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

/// Several named values of `rollup_state`, read in one statement.
pub async fn states(db: &Db, names: &[&str]) -> Result<std::collections::HashMap<String, String>, RollupError> {
    #[derive(Deserialize)]
    struct V {
        name: String,
        value: String,
    }
    let list = serde_json::Value::from(names).to_string();
    let statement = prepare(db, "SELECT name, value FROM rollup_state WHERE name IN (SELECT value FROM json_each(?1))", &[list.into()])?;
    Ok(rows::<V>(db, vec![statement], "reading rollup state").await?.into_iter().map(|v| (v.name, v.value)).collect())
}

pub fn set_state(db: &Db, name: &str, value: &str) -> Result<D1PreparedStatement, RollupError> {
    prepare(
        db,
        "INSERT INTO rollup_state (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        &[name.into(), value.into()],
    )
}

/// Commits `pending` (whose minutes are already encoded as lists of head `parts`
/// and whose hour and day aggregates are planned as `writes`; `what` names
/// it in errors) in one transaction: the lease check, every aggregate and cumulative state,
/// the ledger entries and the cache generations of tenants with late data.
/// Either all of it changes or none does; a batch or row another run wrote
/// meanwhile fails it (primary key or version guard), so nothing is
/// applied twice.
pub async fn commit(
    db: &Db,
    lease: D1PreparedStatement,
    commit_id: &str,
    what: &str,
    (parts, writes): (Vec<String>, Lists),
    pending: &Pending,
    now_ms: u64,
) -> Result<(), RollupError> {
    let mut statements = vec![lease];
    statements.extend(head::writes(db, commit_id, parts)?);
    statements.extend(aggregates::writes(db, writes)?);
    statements.extend(cumulative::writes(db, pending.states.values())?);
    statements.extend(ledger::entries(db, commit_id, pending, now_ms)?);
    // In the same transaction as the writes, so dashboard-api never caches
    // under the new generation a response computed before them.
    for tenant in &pending.late {
        statements.push(prepare(
            db,
            "INSERT INTO cache_generation (tenant, generation) VALUES (?1, 1) \
             ON CONFLICT (tenant) DO UPDATE SET generation = generation + 1",
            &[tenant.as_str().into()],
        )?);
    }
    db.batch(statements).await.map_err(|e| RollupError::Apply { key: what.to_owned(), reason: e.to_string() })?;
    Ok(())
}

/// Deletes at most `limit` expired rows from each resolution of
/// `aggregates`, from `blocks` and from each ledger table, in one batch.
/// Ledger entries go only once they are older than the dedup window and
/// behind `cursor`.
pub async fn expire(db: &Db, cutoffs: &Cutoffs, cursor: Option<&str>, limit: u32) -> Result<Expired, RollupError> {
    let mut statements = aggregates::expire(db, cutoffs, limit)?;
    let aggregate_statements = statements.len();
    statements.push(head::expire(db, cutoffs.first_kept(60), limit)?);
    // Nothing is behind the cursor until it exists.
    if let Some(cursor) = cursor {
        statements.extend(ledger::expire(db, cutoffs, cursor, limit)?);
    }
    let mut out = Expired::default();
    for (i, result) in db.batch(statements).await.during("deleting expired rows")?.iter().enumerate() {
        let changes = result.meta().during("deleting expired rows")?.and_then(|m| m.changes).unwrap_or(0) as u64;
        if i < aggregate_statements {
            out.aggregates += changes;
        } else if i == aggregate_statements {
            out.blocks += changes;
        } else {
            out.ledger += changes;
        }
        out.more |= changes >= u64::from(limit);
    }
    Ok(out)
}

/// Records that `key` was moved to quarantine: marked, and entered in the
/// ledger (with no points) so that the cursor moves past it whether or not
/// the original could be deleted.
pub async fn quarantined(db: &Db, key: &str, now_ms: u64) -> Result<(), RollupError> {
    db.batch(vec![
        prepare(db, "UPDATE archive_failures SET quarantined_ms = ?2 WHERE key = ?1", &[key.into(), num(now_ms as f64)])?,
        ledger::set_aside(db, key, now_ms)?,
    ])
    .await
    .during("recording a quarantined archive")?;
    Ok(())
}
