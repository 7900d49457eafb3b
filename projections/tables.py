"""What each projected topic becomes in ClickHouse: table, columns, and row mapping (pure)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from schemas.envelope import EnvelopeError, EventView, from_kafka_lenient
from schemas.topics import COMMANDS, CONTAINERS, COUNTED, DLQ, INGEST, JOBS, REJECTED, TopicSpec

Row = tuple[Any, ...]

# What a record a projection cannot read raises: not a CloudEvent, or `data` without a
# field the table needs. The projector counts and skips it; it never stops on one.
UNREADABLE = (EnvelopeError, KeyError, TypeError, ValueError)

# Columns every projected event table has, in insert order. `_topic/_partition/_offset`
# say where the row came from: the projector resumes from max(_offset) per partition.
COMMON_COLUMNS: tuple[str, ...] = (
    "event_id",
    "user_id",
    "type",
    "source",
    "time",
    "data",
    "_topic",
    "_partition",
    "_offset",
)


class KafkaRecord(Protocol):
    """The parts of an aiokafka `ConsumerRecord` a projection reads."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


@dataclass(frozen=True)
class Projection:
    """Topic `topic` is projected into `table` with `columns`, one row per record.

    Most topics hold CloudEvents (`to_row` gets the parsed event); a topic whose records
    need not be CloudEvents (the DLQ keeps whatever failed) maps the raw record instead.
    """

    topic: TopicSpec
    table: str
    columns: tuple[str, ...]
    to_row: Callable[[EventView, KafkaRecord], Row] | None = None
    record_to_row: Callable[[KafkaRecord], Row] | None = None

    def row(self, msg: KafkaRecord) -> Row:
        """The row for `msg`; raises one of `UNREADABLE` if this projection cannot read it."""
        if self.record_to_row is not None:
            return self.record_to_row(msg)
        assert self.to_row is not None
        return self.to_row(from_kafka_lenient(msg.value, msg.headers), msg)


def _common(event: EventView, msg: KafkaRecord) -> Row:
    # `data` is stored as the record's own JSON text (checked to be an object when the
    # envelope was read), not serialized again.
    return (
        event.id,
        event.subject,
        event.type,
        event.source,
        event.time,
        msg.value.decode() if msg.value else "{}",
        msg.topic,
        msg.partition,
        msg.offset,
    )


def _counted(event: EventView, msg: KafkaRecord) -> Row:
    return (
        *_common(event, msg),
        int(event.data["seq"]),
        event.data["source_id"],
    )


def _job(event: EventView, msg: KafkaRecord) -> Row:
    data = event.data
    at_ms = int(data.get("at_ms", 0))
    return (
        *_common(event, msg),
        str(data["job_id"]),
        str(data.get("kind", "")),
        str(data.get("state", "")),
        int(data.get("attempt", 0)),
        max(0, at_ms - int(data.get("accepted_ms", at_ms))),
        str(data.get("reason", "")),
    )


def _container(event: EventView, msg: KafkaRecord) -> Row:
    return (
        *_common(event, msg),
        str(event.data["container_id"]),
        str(event.data["state"]),
    )


def _rejected(event: EventView, msg: KafkaRecord) -> Row:
    return (
        *_common(event, msg),
        str(event.data["command_id"]),
        str(event.data["command_type"]),
        str(event.data["reason"]),
    )


def _text(headers: dict[str, bytes], name: str) -> str:
    value = headers.get(name)
    return value.decode(errors="replace") if value is not None else ""


def _dead_letter(msg: KafkaRecord) -> Row:
    """A dead letter as it is: reason, error, origin, and the failed record's bytes as text."""
    headers = dict(msg.headers)
    origin = _text(headers, "x-tributary-origin").rsplit(":", 2)
    origin_topic, origin_partition, origin_offset = (
        (origin[0], int(origin[1]), int(origin[2]))
        if len(origin) == 3 and origin[1].isdigit() and origin[2].isdigit()
        else ("", 0, 0)
    )
    key = msg.key.decode(errors="replace") if msg.key is not None else ""
    return (
        _text(headers, "ce_id"),
        _text(headers, "ce_subject") or key,
        _text(headers, "ce_type"),
        datetime.fromtimestamp(msg.timestamp / 1000, UTC),
        _text(headers, "x-tributary-reason") or "?",
        _text(headers, "x-tributary-error"),
        origin_topic,
        origin_partition,
        origin_offset,
        msg.value.decode(errors="replace") if msg.value is not None else "",
        orjson.dumps({k: v.decode(errors="replace") for k, v in headers.items()}).decode(),
        msg.topic,
        msg.partition,
        msg.offset,
    )


DEAD_LETTER_COLUMNS = (
    "event_id",
    "user_id",
    "type",
    "time",
    "reason",
    "error",
    "origin_topic",
    "origin_partition",
    "origin_offset",
    "value",
    "headers",
    "_topic",
    "_partition",
    "_offset",
)

JOB_COLUMNS = ("job_id", "kind", "state", "attempt", "latency_ms", "reason")

PROJECTIONS: tuple[Projection, ...] = (
    Projection(INGEST, "events_ingest", COMMON_COLUMNS, _common),
    Projection(COUNTED, "events_counted", (*COMMON_COLUMNS, "seq", "source_id"), _counted),
    Projection(COMMANDS, "commands", COMMON_COLUMNS, _common),
    Projection(JOBS, "jobs_events", (*COMMON_COLUMNS, *JOB_COLUMNS), _job),
    Projection(
        CONTAINERS, "containers_events", (*COMMON_COLUMNS, "container_id", "state"), _container
    ),
    Projection(
        REJECTED,
        "commands_rejected",
        (*COMMON_COLUMNS, "command_id", "command_type", "reason"),
        _rejected,
    ),
    Projection(DLQ, "dead_letters", DEAD_LETTER_COLUMNS, record_to_row=_dead_letter),
)


def for_topic(name: str) -> Projection:
    for projection in PROJECTIONS:
        if projection.topic.name == name:
            return projection
    raise KeyError(f"no projection for topic {name!r}")
