"""Records latencies into an exponential histogram with the real
OpenTelemetry Python SDK (cumulative temporality, the SDK's default) and
exports after each of three phases whose values spread out further, so
that the SDK lowers the histogram's scale within one cumulative stream.

usage: exponential.py <base url> <ingest key> <service name>

Prints the scale of each export and the totals recorded; exit status 0
only if every export succeeded.
"""

import json
import sys

from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource

base, key, service = sys.argv[1:4]
results = []
exporter = OTLPMetricExporter(endpoint=f"{base}/v1/metrics", headers={"Authorization": f"Bearer {key}"})
inner = exporter.export


def export(*args, **kwargs):
    result = inner(*args, **kwargs)
    results.append(result.name)
    return result


exporter.export = export
reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
# A second reader sees the same cumulative points, to report their scales.
seen = InMemoryMetricReader()
provider = MeterProvider(
    resource=Resource.create({"service.name": service}),
    metric_readers=[reader, seen],
    # 20 buckets: a narrow range keeps a fine scale, a wide one forces it down.
    views=[View(instrument_name="e2e.exp", aggregation=ExponentialBucketHistogramAggregation(max_size=20))],
)
histogram = provider.get_meter("e2e").create_histogram("e2e.exp", unit="ms")

PHASES = [
    [100.0 + i / 10 for i in range(100)],  # 100.0 .. 109.9: a fine scale
    [float(v) for v in range(1, 1001, 5)],  # 1 .. 996: the scale drops
    [float(2**k) for k in range(0, 40)],  # 1 .. 5.5e11: it drops again
]
scales = []
recorded = 0
total = 0.0
for values in PHASES:
    for v in values:
        histogram.record(v)
    recorded += len(values)
    total += sum(values)
    reader.force_flush()
    data = seen.get_metrics_data()
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.name == "e2e.exp":
                    scales.extend(p.scale for p in m.data.data_points)
provider.shutdown()

print(json.dumps({"count": recorded, "sum": total, "scales": scales, "results": results}))
sys.exit(0 if results and all(r == "SUCCESS" for r in results) else 1)
