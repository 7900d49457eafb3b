"""What a transactional processor returns: records to write, built in one place (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import structlog
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.structs import ConsumerRecord

from schemas import headers as h
from schemas.dead_letters import DeadLetter, Origin
from schemas.editions import editions
from schemas.envelope import CloudEvent, to_kafka
from schemas.jobs import Job
from schemas.topics import MAX_RECORD_BYTES

log = structlog.get_logger(__name__)

# An input this large cannot be passed on: what a processor writes adds headers (the
# sequence, reasons) to a record that already fills a batch, and the producer would refuse
# it on every retry of the partition. (The gateway's records are far smaller.)
MAX_INPUT_BYTES = MAX_RECORD_BYTES - 64 * 1024


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


def dead_lettered(record: ConsumerRecord, topic: str, *, reason: str, error: str) -> Output:
    """`record` unchanged for the DLQ, with headers saying why and where it came from."""
    origin = Origin(topic=record.topic, partition=record.partition, offset=record.offset)
    letter = DeadLetter.of(reason, error, origin)
    log.warning("dead-lettered", reason=reason, error=error, origin=str(origin))
    return Output(topic, record.value, record.key, letter.headers(record.headers or ()))


def too_large(record: ConsumerRecord, topic: str) -> Output | None:
    """A dead letter for `record` if it is too large to pass on, else None. The letter
    keeps the key and headers but not the value, which is what does not fit; the record
    itself stays at its origin (`x-tributary-origin`)."""
    size = DefaultRecordBatchBuilder.estimate_size_in_bytes(
        record.key, record.value, list(record.headers or ())
    )
    if size <= MAX_INPUT_BYTES:
        return None
    letter = dead_lettered(
        record,
        topic,
        reason="record_too_large",
        error=f"{size} bytes; at most {MAX_INPUT_BYTES} can be passed on (value not copied)",
    )
    return replace(letter, value=None)
