//! Table `cumulative_state`: the last cumulative point of each series whose
//! sender uses cumulative temporality.

use super::{prepare, rows};
use crate::error::RollupError;
use crate::prepare::{StateWrite, StoredState};
use prost::Message;
use proto::d1::{hex, json_lists, num, Db};
use serde::Deserialize;
use std::collections::HashMap;
use worker::wasm_bindgen::JsValue;
use worker::D1PreparedStatement;

/// The stored cumulative states of the given series (by identity hash).
pub async fn states(db: &Db, hashes: &[String]) -> Result<HashMap<String, StoredState>, RollupError> {
    #[derive(Deserialize)]
    struct StateRow {
        series_hash: String,
        #[serde(deserialize_with = "proto::aggregate::blob")]
        point: Option<Vec<u8>>,
        version: f64,
    }
    let mut statements = Vec::new();
    for list in json_lists(hashes, |h| h.as_str().into()) {
        statements.push(prepare(
            db,
            "SELECT series_hash, point, version FROM cumulative_state WHERE series_hash IN (SELECT value FROM json_each(?1))",
            &[list.into()],
        )?);
    }
    let mut out = HashMap::new();
    for r in rows::<StateRow>(db, statements, "reading cumulative states").await? {
        let bytes = r.point.unwrap_or_default();
        let point = proto::point::Point::decode(bytes.as_slice())
            .map_err(|e| proto::aggregate::AggregateError::Corrupt(format!("cumulative state: {e}")))?;
        out.insert(r.series_hash, StoredState { point, version: Some(r.version as i64) });
    }
    Ok(out)
}

/// Statements that write `states`, guarded like the aggregates: a new one
/// is inserted (failing if another run inserted it meanwhile), a stored
/// one updated only from the version read.
pub fn writes<'a>(db: &Db, states: impl IntoIterator<Item = &'a StateWrite>) -> Result<Vec<D1PreparedStatement>, RollupError> {
    let (new, stored): (Vec<&StateWrite>, Vec<&StateWrite>) = states.into_iter().partition(|s| s.version.is_none());
    let mut out = Vec::new();
    let seen_ms = |s: &StateWrite| s.point.time_unix_nano / 1_000_000;
    for list in json_lists(new, |s| serde_json::json!([s.series_hash, hex(&s.point.encode_to_vec()), seen_ms(s)])) {
        out.push(prepare(
            db,
            "INSERT INTO cumulative_state (series_hash, point, version, seen_ms) \
             SELECT value->>0, unhex(value->>1), 1, value->>2 FROM json_each(?1)",
            &[list.into()],
        )?);
    }
    for list in json_lists(stored, |s| serde_json::json!([s.series_hash, hex(&s.point.encode_to_vec()), s.version, seen_ms(s)])) {
        // A version other than the one read makes the CASE yield 0, which
        // the CHECK (version >= 1) rejects: the transaction rolls back.
        out.push(prepare(
            db,
            "UPDATE cumulative_state SET point = unhex(u.p), seen_ms = u.t, \
             version = CASE WHEN cumulative_state.version = u.v THEN cumulative_state.version + 1 ELSE 0 END \
             FROM (SELECT value->>0 AS h, value->>1 AS p, value->>2 AS v, value->>3 AS t FROM json_each(?1)) u \
             WHERE cumulative_state.series_hash = u.h",
            &[list.into()],
        )?);
    }
    Ok(out)
}

/// States the sweep looks at per run.
pub const SWEEP_STATES: u32 = 1_000;

/// Statements of one step of the state sweep: the next [`SWEEP_STATES`]
/// states after `after` (a series hash; "" for the first) are looked at,
/// and those whose point was taken before `before_ms` are deleted. The
/// first statement answers the last hash looked at (none once the sweep has
/// passed the end), the second deletes.
///
/// `before_ms` is where the longest-kept resolution's buckets begin: a
/// series silent since then has no bucket left that its earlier increases
/// were counted in, so if it comes back its first point, counted in full
/// as a new series' is, counts nothing kept twice.
pub fn sweep(db: &Db, after: &str, before_ms: u64) -> Result<[D1PreparedStatement; 2], RollupError> {
    let slice = "SELECT series_hash, seen_ms FROM cumulative_state WHERE series_hash > ?1 ORDER BY series_hash LIMIT ?2";
    let (after, limit) = (JsValue::from(after), num(f64::from(SWEEP_STATES)));
    Ok([
        prepare(db, &format!("SELECT MAX(series_hash) AS last FROM ({slice})"), &[after.clone(), limit.clone()])?,
        prepare(
            db,
            &format!("DELETE FROM cumulative_state WHERE series_hash IN (SELECT series_hash FROM ({slice}) WHERE seen_ms < ?3)"),
            &[after, limit, num(before_ms as f64)],
        )?,
    ])
}
