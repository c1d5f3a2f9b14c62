//! The queue consumers' decisions, as plain functions: what a delivered
//! message is, and where a dead letter goes.
//!
//! The main consumer writes each delivery to R2 as one archive by
//! concatenating its messages, which ingest made archive members already.
//! A message that is neither a member nor a bare encoded batch (what
//! ingest queued before archive format 2) would make that archive
//! unreadable, so it is retried instead; after the queue's `max_retries`
//! it reaches the dead-letter queue, whose consumer (also this Worker)
//! parks every message it gets under [`proto::archive::DEAD_LETTER_PREFIX`]
//! in R2, where the rollup's `/status` counts them.

use prost::Message;
use proto::point::Batch;

/// What a delivered message holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivered {
    /// An archive member, copied into the archive as it is.
    Member,
    /// A bare encoded batch, wrapped into a member.
    Bare,
    /// Neither: retried towards the dead-letter queue.
    Unreadable,
}

pub fn classify(bytes: &[u8]) -> Delivered {
    if proto::archive::is_member(bytes) {
        Delivered::Member
    } else if Batch::decode(bytes).is_ok_and(|b| !b.tenant.is_empty()) {
        Delivered::Bare
    } else {
        Delivered::Unreadable
    }
}

/// The R2 key a dead letter is parked under: its time, then its id.
pub fn dead_letter_key(now_ms: u64, message_id: &str) -> String {
    let id: String = message_id.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(64).collect();
    format!("{}{now_ms:013}-{id}.bin", proto::archive::DEAD_LETTER_PREFIX)
}

/// The var that enables test faults; never set in `wrangler.toml`.
pub const TEST_FAULTS: &str = "TEST_FAULTS";

/// The request header that, with `TEST_FAULTS` set to `dead-letter`, makes
/// ingest queue one unreadable message besides the request's batches, so
/// that end-to-end tests can drive the dead-letter path.
pub const FAULT_HEADER: &str = "x-test-fault";

/// The message such a request queues: not a member, and no batch (0xff
/// bytes are no valid protobuf key).
pub const UNREADABLE: &[u8] = &[0xff; 16];

/// Whether a request asks for the dead-letter fault and the Worker allows it.
pub fn dead_letter_fault(test_faults: Option<&str>, header: Option<&str>) -> bool {
    test_faults.is_some_and(|f| f.split(',').any(|f| f.trim() == "dead-letter")) && header == Some("dead-letter")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_bare_batches_and_the_rest() {
        let batch = Batch { tenant: "t".into(), ..Default::default() }.encode_to_vec();
        assert_eq!(classify(&proto::archive::encode(&[&batch])), Delivered::Member);
        assert_eq!(classify(&batch), Delivered::Bare);
        assert_eq!(classify(UNREADABLE), Delivered::Unreadable);
        assert_eq!(classify(b""), Delivered::Unreadable, "no tenant");
    }

    #[test]
    fn dead_letters_sort_by_time_and_keep_a_clean_id() {
        let k = dead_letter_key(1_700_000_000_000, "ab/../c d-1");
        assert_eq!(k, "dead-letter/1700000000000-abcd-1.bin");
        assert!(dead_letter_key(999, "x") < k);
    }

    #[test]
    fn the_fault_needs_both_the_var_and_the_header() {
        assert!(dead_letter_fault(Some("dead-letter"), Some("dead-letter")));
        assert!(dead_letter_fault(Some("other, dead-letter"), Some("dead-letter")));
        assert!(!dead_letter_fault(None, Some("dead-letter")));
        assert!(!dead_letter_fault(Some("dead-letter"), None));
        assert!(!dead_letter_fault(Some(""), Some("dead-letter")));
    }
}
