//! Whatever an archive holds, the rollup's core reads it into points and
//! plans writes or reports an error, never panics: arbitrary bytes, and
//! real archives with bytes flipped or cut (inside the gzip, and inside
//! the inflated protobuf).

use proptest::prelude::*;
use prost::Message;
use proto::point::Batch;
use rollup::chunk::{self, Chunks};
use rollup::pending::Pending;
use rollup::plan;
use rollup::prepare::{self, Target};
use std::collections::HashMap;

const NOW: u64 = 1_800_000_000_000_000_000;

/// A real batch as ingest normalizes a fixture request, encoded.
fn batch() -> Vec<u8> {
    let req = proto::fixtures::metrics_request(30, NOW - 1_000_000_000);
    let points = proto::normalize::metrics::normalize(req, NOW).points();
    Batch { tenant: "t".into(), batch_id: "b".into(), points, ..Default::default() }.encode_to_vec()
}

fn run(archive: &[u8]) {
    let mut pending = Pending::default();
    for chunk in Chunks::new(archive) {
        let Ok(chunk) = chunk else { return };
        for part in chunk::parts(&chunk.batches) {
            let prepared = prepare::prepare(&part.keyed, &Target::own(&part.keyed), &HashMap::new());
            let ids: HashMap<u32, i64> = (0..part.keyed.series.len() as u32).map(|i| (i, i64::from(i))).collect();
            pending.read_batches("k", part.batches);
            let _ = pending.fold(prepared, &ids, Vec::new());
        }
    }
    let _ = plan::lists(plan::writes(pending.series, Vec::new()));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 5_000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        run(&bytes);
        // The same bytes as an archive's inflated content.
        run(&proto::archive::encode(&[&bytes]));
    }

    #[test]
    fn damaged_archives_never_panic(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6), cut in any::<usize>(), inside in any::<bool>()) {
        let mut b = batch();
        if inside {
            for (at, byte) in &edits {
                let i = at % b.len();
                b[i] = *byte;
            }
            b.truncate(cut % (b.len() + 1));
            run(&proto::archive::encode(&[&b]));
        } else {
            let mut file = proto::archive::encode(&[&b]);
            for (at, byte) in &edits {
                let i = at % file.len();
                file[i] = *byte;
            }
            file.truncate(cut % (file.len() + 1));
            run(&file);
        }
    }
}
