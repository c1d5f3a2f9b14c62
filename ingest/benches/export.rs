//! The ingest core natively: decode, normalize and package (queue batches
//! and Analytics Engine points) of the requests the targets are stated for.
//! Run with `cargo bench -p ingest`; figures in docs/PERFORMANCE.md.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ingest::body::Encoding;
use ingest::export::{export, Context, Signal};
use prost::Message;
use proto::fixtures;

const NOW: u64 = 1_800_000_000_000_000_000;

fn bench(c: &mut Criterion) {
    let ctx = Context { tenant: "bench", now_unix_nano: NOW, seed: 7, analytics_one_in: 1 };
    let metrics = fixtures::metrics_request(1000, NOW - 1_000_000_000);
    let metrics_pb = metrics.encode_to_vec();
    let metrics_json = fixtures::metrics_json(&metrics).into_bytes();
    let spans_pb = fixtures::traces_request(1000, NOW - 1_000_000_000).encode_to_vec();

    let mut g = c.benchmark_group("export");
    g.throughput(Throughput::Elements(1000));
    for (name, signal, body, encoding) in [
        ("metrics_protobuf_1000_points", Signal::Metrics, &metrics_pb, Encoding::Protobuf),
        ("metrics_json_1000_points", Signal::Metrics, &metrics_json, Encoding::Json),
        ("traces_protobuf_1000_spans", Signal::Traces, &spans_pb, Encoding::Protobuf),
    ] {
        g.bench_function(name, |b| {
            b.iter_batched(|| (), |_| export(signal, &ctx, body, encoding).map(|a| a.messages.len()), BatchSize::SmallInput)
        });
    }
    g.finish();

    let mut g = c.benchmark_group("decode_only");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("metrics_protobuf_1000_points", |b| {
        b.iter(|| proto::decode::metrics(&metrics_pb, Encoding::Protobuf).map(|r| r.resource_metrics.len()))
    });
    g.bench_function("metrics_json_1000_points", |b| {
        b.iter(|| proto::decode::metrics(&metrics_json, Encoding::Json).map(|r| r.resource_metrics.len()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
