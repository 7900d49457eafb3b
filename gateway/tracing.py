"""W3C trace context on produced records: continue the caller's trace or start one."""

from __future__ import annotations

import random
import re
from collections.abc import Mapping

from schemas import headers as h
from tributary import telemetry

# All-zero trace and parent ids are invalid (W3C trace context): such a header starts anew.
_TRACEPARENT = re.compile(r"^00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$")


def trace_headers(
    request_headers: Mapping[str, str], idempotency_key: str | None
) -> dict[str, str]:
    """Kafka headers for a record produced on behalf of a request with `request_headers`:
    with tracing on, the request's span (`tributary.telemetry`); off, the caller's trace
    id and a new span id, or a new trace, without the SDK."""
    if telemetry.enabled and (current := telemetry.traceparent()):
        headers = {h.TRACEPARENT: current.decode()}
        if idempotency_key:
            headers[h.IDEMPOTENCY_KEY] = idempotency_key
        return headers
    incoming = request_headers.get(h.TRACEPARENT, "")
    trace_id = incoming.split("-")[1] if _TRACEPARENT.match(incoming) else _random_id(128)
    headers = {h.TRACEPARENT: f"00-{trace_id}-{_random_id(64)}-01"}
    if idempotency_key:
        headers[h.IDEMPOTENCY_KEY] = idempotency_key
    return headers


def _random_id(bits: int) -> str:
    """A nonzero random trace or span id in hex, made the way OpenTelemetry's
    `RandomIdGenerator` makes them: `random.getrandbits`, since the ids must be unique, not
    secret (the `secrets` module's system call per id showed in the gateway's profile).
    `random` seeds itself from the OS at start and again in a forked child, so gateway
    worker processes do not repeat each other's ids."""
    while not (value := random.getrandbits(bits)):
        pass  # all zeros is invalid in W3C trace context
    return f"{value:0{bits // 4}x}"
