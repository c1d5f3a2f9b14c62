//! How long each resolution and the ledgers are kept, and which rows that
//! makes expired at a given time.
//!
//! A bucket expires once all of it is older than its resolution's
//! retention. Late points for an expired bucket are not written to it (they
//! would only be deleted again); they still count in the coarser buckets
//! that are kept.

use proto::retention::{Kept, RESOLUTIONS};

const DAY_S: i64 = 86_400;

/// How long each resolution is kept (the rule dashboard-api reads by too,
/// [`proto::retention`]), and the batch ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    pub kept: Kept,
    /// How long applied batch ids are remembered, so that a batch delivered
    /// again within this window is skipped (see [`crate::dedup`]). Queue
    /// redeliveries and exporter retries come within minutes to hours.
    pub dedup_days: u64,
}

impl Default for Retention {
    fn default() -> Retention {
        Retention { kept: Kept::default(), dedup_days: 7 }
    }
}

/// The oldest bucket start still kept, per resolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cutoffs {
    /// (resolution in seconds, first kept bucket start in unix seconds).
    pub buckets: [(u32, i64); 3],
    /// Ledger entries (archive keys) older than this unix millisecond time
    /// may be deleted.
    pub ledger_ms: u64,
}

impl Retention {
    /// What is expired at `now_ms`.
    pub fn cutoffs(&self, now_ms: u64) -> Cutoffs {
        let now_s = (now_ms / 1000) as i64;
        let buckets = RESOLUTIONS.map(|r| (r, self.kept.first_kept_start(i64::from(r), now_s)));
        Cutoffs { buckets, ledger_ms: now_ms.saturating_sub(self.dedup_days * DAY_S as u64 * 1000) }
    }
}

impl Cutoffs {
    /// The first kept bucket start of `resolution`.
    pub fn first_kept(&self, resolution: u32) -> i64 {
        self.buckets.iter().find(|&&(r, _)| r == resolution).map_or(i64::MIN, |&(_, first)| first)
    }

    /// Whether a bucket of `resolution` starting at `bucket_start` is expired.
    pub fn expired(&self, resolution: u32, bucket_start: i64) -> bool {
        bucket_start < self.first_kept(resolution)
    }
}

/// Rows deleted by one retention step.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Expired {
    /// Aggregate rows, all resolutions together.
    pub aggregates: u64,
    /// Minute blocks (one per series-hour, `store::head`).
    pub blocks: u64,
    /// Ledger rows of applied batches and archives.
    pub ledger: u64,
    /// Catalog rows of series with no bucket left (`store::catalog::sweep`).
    pub series: u64,
    /// Cumulative states of series silent since before the longest-kept
    /// buckets (`store::cumulative::sweep`).
    pub states: u64,
    /// Whether some table had more expired rows than one step deletes.
    pub more: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_expires_once_all_of_it_is_older_than_its_retention() {
        let now_ms = 1_800_000_000_000u64;
        let now_s = (now_ms / 1000) as i64;
        let c = Retention::default().cutoffs(now_ms);
        let two_days = 2 * DAY_S;
        // The minute that ends exactly at now - 2 days is gone; the next one is kept.
        let edge = now_s - two_days - 60;
        assert!(c.expired(60, edge - 1));
        assert!(!c.expired(60, edge + 1));
        // An hour bucket of three days ago is kept (90 days), a day bucket of a year ago too.
        assert!(!c.expired(3600, now_s - 3 * DAY_S));
        assert!(c.expired(3600, now_s - 91 * DAY_S));
        assert!(!c.expired(86_400, now_s - 365 * DAY_S));
        assert!(c.expired(86_400, now_s - 732 * DAY_S));
        assert_eq!(c.ledger_ms, now_ms - 7 * 86_400_000);
    }

    #[test]
    fn each_resolution_uses_its_own_setting() {
        let r = Retention { kept: Kept { minute_days: 1, hour_days: 2, day_days: 3 }, dedup_days: 1 };
        let c = r.cutoffs(10 * DAY_S as u64 * 1000);
        assert_eq!(c.buckets, [(60, 9 * DAY_S - 59), (3600, 8 * DAY_S - 3599), (86_400, 7 * DAY_S - 86_399)]);
        assert_eq!((c.first_kept(60), c.first_kept(86_400)), (9 * DAY_S - 59, 7 * DAY_S - 86_399));
    }
}
