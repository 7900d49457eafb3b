"""Dead-lettering: the original record, its headers and the reason, on the DLQ topic."""

from __future__ import annotations

import faust
import structlog

log = structlog.get_logger(__name__)


async def dead_letter(dlq: faust.TopicT, event: faust.EventT, *, reason: str, error: str) -> None:
    """Send `event` unchanged to `dlq` with `x-tributary-*` headers saying why."""
    msg = event.message
    headers = dict(event.headers or {})
    headers.update(
        {
            "x-tributary-reason": reason.encode(),
            "x-tributary-error": error[:2000].encode(),
            "x-tributary-origin": f"{msg.topic}:{msg.partition}:{msg.offset}".encode(),
        }
    )
    log.warning("dead-lettered", reason=reason, error=error, origin=headers["x-tributary-origin"])
    await dlq.send(key=event.key, value=event.value, headers=headers)
