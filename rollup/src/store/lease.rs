//! Table `rollup_lease`: the lease that keeps overlapping cron runs from
//! both applying work.

use super::{prepare, rows};
use crate::error::RollupError;
use proto::d1::{num, Db};
use serde::Deserialize;
use worker::D1PreparedStatement;

/// Takes the run lease for `holder` until `until_ms` if it is free or has
/// expired by `now_ms`; whether it did.
pub async fn acquire(db: &Db, holder: &str, now_ms: u64, until_ms: u64) -> Result<bool, RollupError> {
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
pub fn keep(db: &Db, holder: &str, until_ms: u64) -> Result<D1PreparedStatement, RollupError> {
    prepare(
        db,
        "UPDATE rollup_lease SET until_ms = CASE WHEN holder = ?1 THEN ?2 ELSE -1 END WHERE name = 'run'",
        &[holder.into(), num(until_ms as f64)],
    )
}

/// A statement that gives the lease up.
pub fn release(db: &Db, holder: &str) -> Result<D1PreparedStatement, RollupError> {
    prepare(db, "DELETE FROM rollup_lease WHERE name = 'run' AND holder = ?1", &[holder.into()])
}
