"""The stream workers' Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter

EVENTS_PROCESSED = Counter(
    "tributary_streams_events_total", "Events handled by an agent", ["agent", "outcome"]
)
