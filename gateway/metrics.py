"""The gateway's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter

EVENTS_ACCEPTED = Counter(
    "tributary_gateway_events_accepted_total", "Events acknowledged by the broker", ["topic"]
)
FAST_PATH = Counter(
    "tributary_gateway_fast_path_total",
    "POST /v1/events requests by what the fast path did: served (202), refused (its own "
    "4xx/5xx) or passed (to the FastAPI route)",
    ["outcome"],
)
