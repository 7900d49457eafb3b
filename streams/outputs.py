"""What a transactional processor returns: records to write, built in one place (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field

import structlog
from aiokafka.structs import ConsumerRecord

from schemas.envelope import CloudEvent, to_kafka
from streams.dlq import dead_letter_headers

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Output:
    """A record to write; it becomes visible when its input's transaction commits."""

    topic: str
    value: bytes | None
    key: bytes | None = None
    headers: list[tuple[str, bytes]] = field(default_factory=list)


def event(topic: str, ev: CloudEvent) -> Output:
    """`ev` in binary content mode, keyed by its user."""
    key, value, headers = to_kafka(ev)
    return Output(topic, value, key, list(headers))


def dead_lettered(record: ConsumerRecord, topic: str, *, reason: str, error: str) -> Output:
    """`record` unchanged for the DLQ, with headers saying why and where it came from."""
    origin = f"{record.topic}:{record.partition}:{record.offset}"
    log.warning("dead-lettered", reason=reason, error=error, origin=origin)
    headers = dead_letter_headers(record.headers or (), origin, reason=reason, error=error)
    return Output(topic, record.value, record.key, headers)
