//! Table `cumulative_state`: the last cumulative point of each series whose
//! sender uses cumulative temporality.

use super::{prepare, rows};
use crate::error::RollupError;
use crate::prepare::{StateWrite, StoredState};
use prost::Message;
use proto::d1::{hex, json_lists, Db};
use serde::Deserialize;
use std::collections::HashMap;
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
    for list in json_lists(new, |s| serde_json::json!([s.series_hash, hex(&s.point.encode_to_vec())])) {
        out.push(prepare(
            db,
            "INSERT INTO cumulative_state (series_hash, point, version) \
             SELECT value->>0, unhex(value->>1), 1 FROM json_each(?1)",
            &[list.into()],
        )?);
    }
    for list in json_lists(stored, |s| serde_json::json!([s.series_hash, hex(&s.point.encode_to_vec()), s.version])) {
        // A version other than the one read makes the CASE yield 0, which
        // the CHECK (version >= 1) rejects: the transaction rolls back.
        out.push(prepare(
            db,
            "UPDATE cumulative_state SET point = unhex(u.p), \
             version = CASE WHEN cumulative_state.version = u.v THEN cumulative_state.version + 1 ELSE 0 END \
             FROM (SELECT value->>0 AS h, value->>1 AS p, value->>2 AS v FROM json_each(?1)) u \
             WHERE cumulative_state.series_hash = u.h",
            &[list.into()],
        )?);
    }
    Ok(out)
}
