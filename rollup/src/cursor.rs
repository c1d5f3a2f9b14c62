//! Where the next listing of archives starts.
//!
//! Archive keys sort by write time, but writes finish out of order: an
//! archive keyed a little earlier can appear after a later one was listed.
//! So the cursor only moves past keys that are both processed and older than
//! a grace period; newer keys are listed again next run and skipped through
//! the ledger if already applied.

use std::collections::HashSet;

/// How long after its key's time an archive may still appear.
pub const GRACE_MS: u64 = 10 * 60 * 1000;

/// The new cursor: the last key of the leading run of `listed` (sorted) keys
/// that are processed and older than the grace period; `current` if none.
pub fn advance(current: Option<String>, listed: &[String], processed: &HashSet<String>, now_ms: u64) -> Option<String> {
    let mut cursor = current;
    for key in listed {
        let old_enough = proto::archive::key_time_ms(key).is_some_and(|t| t + GRACE_MS <= now_ms);
        if !(old_enough && processed.contains(key)) {
            break;
        }
        cursor = Some(key.clone());
    }
    cursor
}

/// The age at `now_ms` of the oldest of `listed` (sorted) keys not yet
/// processed, and how many are not: the rollup's lag and backlog.
pub fn backlog(listed: &[String], processed: &HashSet<String>, now_ms: u64) -> (u64, usize) {
    let mut left = listed.iter().filter(|k| !processed.contains(*k));
    let lag = left.next().and_then(|k| proto::archive::key_time_ms(k)).map_or(0, |t| now_ms.saturating_sub(t));
    (lag, listed.iter().filter(|k| !processed.contains(*k)).count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backlog_is_the_age_of_the_oldest_unprocessed_key() {
        let k = |ms: u64, s: &str| proto::archive::key(ms, &[s]);
        let listed = vec![k(1_000, "a"), k(5_000, "b"), k(9_000, "c")];
        let first: HashSet<String> = [listed[0].clone()].into();
        assert_eq!(backlog(&listed, &first, 10_000), (5_000, 2));
        let all: HashSet<String> = listed.iter().cloned().collect();
        assert_eq!(backlog(&listed, &all, 10_000), (0, 0));
        assert_eq!(backlog(&[], &all, 10_000), (0, 0));
    }

    #[test]
    fn stops_at_the_first_unprocessed_or_recent_key() {
        let now = 100 * 60 * 1000;
        let k = |min: u64, s: &str| proto::archive::key(min * 60 * 1000, &[s]);
        let listed = vec![k(1, "a"), k(2, "b"), k(3, "c"), k(95, "d")];
        let all: HashSet<String> = listed.iter().cloned().collect();
        assert_eq!(advance(None, &listed, &all, now), Some(listed[2].clone()), "the recent key stays listed");
        let some: HashSet<String> = [listed[0].clone(), listed[2].clone()].into();
        assert_eq!(advance(None, &listed, &some, now), Some(listed[0].clone()), "an unprocessed key stops it");
        assert_eq!(advance(Some("x".into()), &listed, &HashSet::new(), now), Some("x".into()));
    }
}
