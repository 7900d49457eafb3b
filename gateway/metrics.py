"""The gateway's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

# From 1 ms to 10 s: the gateway answers in milliseconds, and a dependency times out in seconds.
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05,
    0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip

EVENTS_ACCEPTED = Counter(
    "tributary_gateway_events_accepted_total", "Events acknowledged by the broker", ["topic"]
)
FAST_PATH = Counter(
    "tributary_gateway_fast_path_total",
    "POST /v1/events requests by what the fast path did: served (202), refused (its own "
    "4xx/5xx) or passed (to the FastAPI route)",
    ["outcome"],
)
REQUEST_SECONDS = Histogram(
    "tributary_gateway_request_seconds",
    "HTTP requests from their arrival at the app to the last byte of the answer, by route "
    "template ('unmatched' where no route knows the path), method and status",
    ["route", "method", "status"],
    buckets=LATENCY_BUCKETS,
)
DEPENDENCY_SECONDS = Histogram(
    "tributary_gateway_dependency_seconds",
    "Round trips to the gateway's dependencies, one per call: rate_limit (one Lua call in "
    "Redis, deciding the checks of all requests waiting for it), kafka_ack (one record batch "
    "of single events, or the events of one batch request, until the broker acknowledged)",
    ["call"],
    buckets=LATENCY_BUCKETS,
)
RATE_LIMIT_SECONDS = DEPENDENCY_SECONDS.labels(call="rate_limit")
KAFKA_ACK_SECONDS = DEPENDENCY_SECONDS.labels(call="kafka_ack")
