"""The stream workers' Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

EVENTS_PROCESSED = Counter(
    "tributary_streams_events_total", "Events handled by an agent", ["agent", "outcome"]
)
STALLED = Gauge(
    "tributary_streams_stalled_partitions",
    "Source partitions with lag whose committed offset has not moved for a while",
)
