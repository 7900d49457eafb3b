"""The stream workers' Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_PROCESSED = Counter(
    "tributary_streams_events_total", "Events handled by an agent", ["agent", "outcome"]
)
STALLED = Gauge(
    "tributary_streams_stalled_partitions",
    "Source partitions with lag whose committed offset has not moved for a while",
)
POOL_IN_FLIGHT = Gauge(
    "tributary_gpu_pool_in_flight", "Inference attempts this worker holds a pool slot for", ["pool"]
)
POOL_WAIT_SECONDS = Histogram(
    "tributary_gpu_pool_wait_seconds", "Time an attempt waited for a GPU pool slot", ["pool"]
)
