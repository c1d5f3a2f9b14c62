//! Table `archive_failures`: archives that failed, counted run by run
//! ([`crate::quarantine`]).

use super::{prepare, rows};
use crate::error::{Context, RollupError};
use proto::d1::{num, Db};
use serde::Deserialize;

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
