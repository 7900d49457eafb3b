"""Dead-lettering: the original record, its headers and the reason, on the DLQ topic."""

from __future__ import annotations

from collections.abc import Iterable

import faust
import structlog

log = structlog.get_logger(__name__)


def dead_letter_headers(
    headers: Iterable[tuple[str, bytes]], origin: str, *, reason: str, error: str
) -> list[tuple[str, bytes]]:
    """The record's own headers plus `x-tributary-*` ones saying why and where from (pure)."""
    merged = dict(headers)
    merged.update(
        {
            "x-tributary-reason": reason.encode(),
            "x-tributary-error": error[:2000].encode(),
            "x-tributary-origin": origin.encode(),
        }
    )
    return list(merged.items())


async def dead_letter(dlq: faust.TopicT, event: faust.EventT, *, reason: str, error: str) -> None:
    """Send `event` unchanged to `dlq` with `x-tributary-*` headers saying why."""
    msg = event.message
    origin = f"{msg.topic}:{msg.partition}:{msg.offset}"
    headers = dead_letter_headers(
        dict(event.headers or {}).items(), origin, reason=reason, error=error
    )
    log.warning("dead-lettered", reason=reason, error=error, origin=origin)
    await dlq.send(key=event.key, value=event.value, headers=headers)
