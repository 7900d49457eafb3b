"""What a transactional processor returns: records to write, built in one place (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import structlog

from schemas import headers as h
from schemas.dead_letters import DeadLetter, Origin
from schemas.editions import editions
from schemas.envelope import CloudEvent, to_kafka
from schemas.jobs import Job
from schemas.records import Record

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Output:
    """A record to write; it becomes visible when its input's transaction commits."""

    topic: str
    value: bytes | None
    key: bytes | None = None
    headers: list[tuple[str, bytes]] = field(default_factory=list)


@dataclass(frozen=True)
class Effect:
    """A job attempt to run once the transaction that decided it has committed: the
    decision is durable before the side effect starts. Its result comes back as a record
    on `partition` of the processor's input topic."""

    job: Job
    partition: int
    traceparent: bytes | None = None  # the decision's span: the attempt continues its trace


def event(topic: str, ev: CloudEvent) -> list[Output]:
    """`ev` in binary content mode, keyed by its user: one record per edition of its type
    still produced (one, unless its version was bumped lately: `schemas.editions`)."""
    out = []
    for edition in editions(ev):
        key, value, headers = to_kafka(edition)
        out.append(Output(topic, value, key, list(headers)))
    return out


def scheduled(topic: str, ev: CloudEvent, due_ms: int, target: str) -> list[Output]:
    """`ev` for the retry topic: the scheduler hands it to `target` at `due_ms`."""
    schedule = [(h.DUE_MS, str(due_ms).encode()), (h.TARGET, target.encode())]
    return [replace(o, headers=[*o.headers, *schedule]) for o in event(topic, ev)]


def dead_lettered(record: Record, topic: str, *, reason: str, error: str) -> Output:
    """`record` unchanged for the DLQ, with headers saying why and where it came from."""
    origin = Origin(topic=record.topic, partition=record.partition, offset=record.offset)
    letter = DeadLetter.of(reason, error, origin)
    log.warning("dead-lettered", reason=reason, error=error, origin=str(origin))
    return Output(topic, record.value, record.key, letter.headers(record.headers or ()))
