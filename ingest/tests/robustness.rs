//! Whatever bytes a client sends, the export core answers with accepted
//! points or an `IngestError`, never a panic (which in the Worker aborts
//! the wasm instance and answers 500): arbitrary bytes, and real requests
//! with bytes flipped, cut or repeated, in both encodings and all signals.

use ingest::body::Encoding;
use ingest::export::{export, Context, Signal};
use proptest::prelude::*;
use prost::Message;

const NOW: u64 = 1_800_000_000_000_000_000;

fn bodies() -> Vec<(Signal, Encoding, Vec<u8>)> {
    let metrics = proto::fixtures::metrics_request(20, NOW - 1_000_000_000);
    let json = proto::fixtures::metrics_json(&metrics).into_bytes();
    let spans = proto::fixtures::traces_request(20, NOW - 1_000_000_000).encode_to_vec();
    vec![
        (Signal::Metrics, Encoding::Protobuf, metrics.encode_to_vec()),
        (Signal::Metrics, Encoding::Json, json),
        (Signal::Traces, Encoding::Protobuf, spans),
    ]
}

fn run(signal: Signal, encoding: Encoding, body: &[u8]) {
    let ctx = Context { tenant: "t", now_unix_nano: NOW, seed: 1, analytics_one_in: 1 };
    if let Ok(accepted) = export(signal, &ctx, body, encoding) {
        assert!(accepted.messages.iter().all(|m| m.len() <= ingest::batches::MAX_MESSAGE_BYTES));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10_000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..2048), which in 0..6usize) {
        let signal = [Signal::Metrics, Signal::Traces, Signal::Logs][which % 3];
        let encoding = if which < 3 { Encoding::Protobuf } else { Encoding::Json };
        run(signal, encoding, &body);
    }

    #[test]
    fn damaged_real_requests_never_panic(which in 0..3usize, edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8), cut in any::<usize>()) {
        let (signal, encoding, mut body) = bodies().swap_remove(which);
        for (at, byte) in edits {
            let i = at % body.len();
            body[i] = byte;
        }
        body.truncate(cut % (body.len() + 1));
        run(signal, encoding, &body);
    }
}
