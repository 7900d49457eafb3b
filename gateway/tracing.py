"""W3C trace context on produced records: continue the caller's trace or start one."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping

_TRACEPARENT = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


def trace_headers(
    request_headers: Mapping[str, str], idempotency_key: str | None
) -> dict[str, str]:
    """Kafka headers for a record produced on behalf of a request with `request_headers`."""
    incoming = request_headers.get("traceparent", "")
    trace_id = incoming.split("-")[1] if _TRACEPARENT.match(incoming) else secrets.token_hex(16)
    headers = {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}
    if idempotency_key:
        headers["idempotency-key"] = idempotency_key
    return headers
