"""Dead-lettering: the original record, its headers and the reason, on the DLQ topic."""

from __future__ import annotations

import faust
import structlog

from schemas.dead_letters import DeadLetter, Origin

log = structlog.get_logger(__name__)


async def dead_letter(dlq: faust.TopicT, event: faust.EventT, *, reason: str, error: str) -> None:
    """Send `event` unchanged to `dlq` with `x-tributary-*` headers saying why."""
    letter = DeadLetter.of(reason, error, origin_of(event))
    log.warning("dead-lettered", reason=reason, error=error, origin=str(letter.origin))
    headers = letter.headers(dict(event.headers or {}).items())
    await dlq.send(key=event.key, value=event.value, headers=headers)


def origin_of(event: faust.EventT) -> Origin:
    """Where a record a Faust agent read was."""
    msg = event.message
    return Origin(topic=msg.topic, partition=msg.partition, offset=msg.offset)
