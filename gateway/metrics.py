"""The gateway's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter

EVENTS_ACCEPTED = Counter(
    "tributary_gateway_events_accepted_total", "Events acknowledged by the broker", ["topic"]
)
