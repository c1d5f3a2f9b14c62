//! Archives set aside.
//!
//! An archive that cannot be applied used to be retried at the head of the
//! listing every run, forever; once 10 pages of later archives piled up
//! behind it nothing new was listed, and other tenants' batches in it were
//! lost with it. Now an archive that fails the same way on
//! [`AFTER_RUNS`] consecutive runs (with an error that lies in the archive:
//! it does not decode, or D1 fails on it while applying other archives in
//! the same run; see [`counts`]) is moved under [`PREFIX`] in the same bucket,
//! recorded as processed so that the cursor moves past it, and listed in
//! `/status` with its error. Chunks of it that were applied before stay
//! applied; an operator who fixes the cause can put the file back under
//! `archives/` (a new key), and the rollup applies what is left, skipping
//! the batches it recorded.

use crate::error::{Blame, Context, RollupError};
use crate::store;
use proto::d1::Db;
use serde::Serialize;
use worker::Bucket;

/// Consecutive failing runs after which an archive is set aside.
pub const AFTER_RUNS: u32 = 3;

/// Where set-aside archives go.
pub const PREFIX: &str = "quarantine/";

/// An archive this run set aside.
#[derive(Debug, Serialize)]
pub struct Quarantined {
    pub key: String,
    pub moved_to: String,
    pub error: String,
}

/// Whether a failure of this blame counts towards setting its archive
/// aside, in a run that applied `applied` other archives. One that does not
/// read always counts. One where D1 failed counts only if D1 applied other
/// archives in the same run: then the archive's data is the likely cause,
/// not D1 (an overloaded or failing D1 fails them all, and then nothing is
/// set aside).
pub fn counts(blame: Blame, applied: u64) -> bool {
    match blame {
        Blame::Archive => true,
        Blame::Store => applied > 0,
        Blame::None => false,
    }
}

/// The quarantine key of an archive key: `archives/x` → `quarantine/x`.
pub fn key_for(archive_key: &str) -> String {
    format!("{PREFIX}{}", archive_key.strip_prefix(proto::archive::KEY_PREFIX).unwrap_or(archive_key))
}

/// Counts a failed run of `key`; once it has failed the same way
/// [`AFTER_RUNS`] times in a row, moves it to quarantine.
pub async fn after_failure(db: &Db, bucket: &Bucket, key: &str, error: &str, now_ms: u64) -> Result<Option<Quarantined>, RollupError> {
    if store::record_failure(db, key, error, now_ms).await? < AFTER_RUNS {
        return Ok(None);
    }
    let moved_to = key_for(key);
    // Copy, record, then delete: a failure on the way leaves the original
    // in place, and the next failing run tries again.
    let object = bucket.get(key).execute().await.during("reading an archive to set aside")?;
    if let Some(body) = object.as_ref().and_then(|o| o.body()) {
        let bytes = body.bytes().await.during("reading an archive to set aside")?;
        bucket.put(&moved_to, bytes).execute().await.during("writing an archive to quarantine")?;
    }
    store::quarantined(db, key, now_ms).await?;
    bucket.delete(key).await.during("deleting a quarantined archive")?;
    Ok(Some(Quarantined { key: key.to_owned(), moved_to, error: error.to_owned() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_failures_that_point_at_the_archive_count() {
        assert!(counts(Blame::Archive, 0));
        assert!(!counts(Blame::Store, 0), "D1 failing on everything says nothing about the archive");
        assert!(counts(Blame::Store, 1));
        assert!(!counts(Blame::None, 5));
    }

    #[test]
    fn quarantine_keys_keep_the_archive_name() {
        let k = proto::archive::key(1_700_000_000_000, &["m"]);
        let q = key_for(&k);
        assert!(q.starts_with("quarantine/1700000000000-") && q.ends_with(".pb.gz"), "{q}");
        // Not under the listing prefix: the rollup never lists it again.
        assert!(!q.starts_with(proto::archive::KEY_PREFIX));
    }
}
