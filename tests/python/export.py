"""Exports metrics, spans and logs with the real OpenTelemetry Python SDK to
an OTLP/HTTP endpoint, the way an application would, and prints what it sent.

usage: export.py <base url> <ingest key> <service name>

Exit status 0 only if every export the SDK made reported success.
"""

import json
import logging
import sys

from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

base, key, service = sys.argv[1:4]
headers = {"Authorization": f"Bearer {key}"}
resource = Resource.create({"service.name": service, "deployment.environment": "e2e"})
results = []
metric_exports = []


def recording(exporter, log=None):
    """Wraps an exporter's export() to remember each result."""
    inner = exporter.export

    def export(*args, **kwargs):
        result = inner(*args, **kwargs)
        results.append(result.name)
        if log is not None:
            log.append(result.name)
        return result

    exporter.export = export
    return exporter


# Metrics, gzip-compressed, with the SDK's default (cumulative) temporality.
REQUESTS = 50
LATENCIES = [float(v) for v in range(1, 201)]
metric_exporter = recording(
    OTLPMetricExporter(endpoint=f"{base}/v1/metrics", headers=headers, compression=Compression.Gzip),
    metric_exports,
)
reader = PeriodicExportingMetricReader(metric_exporter, export_interval_millis=3_600_000)
meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
meter = meter_provider.get_meter("e2e")
counter = meter.create_counter("e2e.requests", unit="1")
for i in range(REQUESTS):
    counter.add(1, {"route": "/a" if i % 2 else "/b"})
histogram = meter.create_histogram("e2e.latency", unit="ms")
for v in LATENCIES:
    histogram.record(v, {"route": "/a"})
inflight = meter.create_up_down_counter("e2e.inflight")
inflight.add(5)
inflight.add(-2)
meter.create_gauge("e2e.temperature", unit="Cel").set(21.5)
# shutdown() collects and exports once (force_flush() first would export the
# same cumulative totals a second time, as a later point).
meter_provider.shutdown()

# Spans, uncompressed protobuf.
SPANS = 30
tracer_provider = TracerProvider(resource=resource)
tracer_provider.add_span_processor(
    BatchSpanProcessor(recording(OTLPSpanExporter(endpoint=f"{base}/v1/traces", headers=headers)))
)
tracer = tracer_provider.get_tracer("e2e")
errors = 0
for i in range(SPANS):
    with tracer.start_as_current_span(f"op{i % 3}", kind=SpanKind.SERVER) as span:
        if i % 5 == 0:
            span.set_status(Status(StatusCode.ERROR))
            errors += 1
tracer_provider.force_flush()
tracer_provider.shutdown()

# Logs through the standard logging module.
LOGS = 12
logger_provider = LoggerProvider(resource=resource)
logger_provider.add_log_record_processor(
    BatchLogRecordProcessor(recording(OTLPLogExporter(endpoint=f"{base}/v1/logs", headers=headers)))
)
logger = logging.getLogger("e2e")
logger.setLevel(logging.DEBUG)
logger.propagate = False
logger.addHandler(LoggingHandler(level=logging.DEBUG, logger_provider=logger_provider))
for i in range(LOGS):
    (logger.error if i % 4 == 0 else logger.warning)("log line %d", i)
logger_provider.force_flush()
logger_provider.shutdown()

print(json.dumps({
    "requests": REQUESTS,
    "latencies": len(LATENCIES),
    "latency_sum": sum(LATENCIES),
    "spans": SPANS,
    "error_spans": errors,
    "logs": LOGS,
    "error_logs": sum(1 for i in range(LOGS) if i % 4 == 0),
    "metric_exports": len(metric_exports),
    "results": results,
}))
sys.exit(0 if results and all(r == "SUCCESS" for r in results) else 1)
