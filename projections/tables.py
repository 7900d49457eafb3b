"""What each projected topic becomes in ClickHouse: table, columns, and row mapping (pure)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import ValidationError

from schemas import contracts
from schemas import headers as h
from schemas.dead_letters import DeadLetter
from schemas.envelope import EnvelopeError, EventView, from_kafka_lenient
from schemas.events import CountedData
from schemas.jobs import CommandRejected, ContainerEvent, DesktopSession, JobStep
from schemas.records import Record
from schemas.topics import (
    COMMANDS,
    CONTAINERS,
    COUNTED,
    DESKTOP_SESSIONS,
    DLQ,
    INGEST,
    JOBS,
    REJECTED,
    TopicSpec,
)

Row = tuple[Any, ...]

# What a record a projection cannot read raises: not a CloudEvent, or `data` without a
# field the table needs. The projector counts and skips it; it never stops on one.
UNREADABLE = (EnvelopeError, ValidationError, KeyError, TypeError, ValueError)

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


@dataclass(frozen=True)
class Projection:
    """Topic `topic` is projected into `table` with `columns`, one row per record.

    Most topics hold CloudEvents (`to_row` gets the parsed event); a topic whose records
    need not be CloudEvents (the DLQ keeps whatever failed) maps the raw record instead.
    """

    topic: TopicSpec
    table: str
    columns: tuple[str, ...]
    to_row: Callable[[EventView, Record], Row] | None = None
    record_to_row: Callable[[Record], Row] | None = None

    def row(self, msg: Record) -> Row | None:
        """The row for `msg`, or None for a copy in an older version of its type (the current
        one is projected); raises one of `UNREADABLE` if this projection cannot read it."""
        if self.record_to_row is not None:
            return self.record_to_row(msg)
        assert self.to_row is not None
        event = from_kafka_lenient(msg.value, msg.headers)
        if not contracts.is_current(event.dataschema):
            return None
        return self.to_row(event, msg)


def _common(event: EventView, msg: Record) -> Row:
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


def _counted(event: EventView, msg: Record) -> Row:
    counted = CountedData.model_validate(event.data)
    return (*_common(event, msg), counted.seq, counted.source_id)


def _job(event: EventView, msg: Record) -> Row:
    step = JobStep.model_validate(event.data)
    return (
        *_common(event, msg),
        step.job_id,
        str(step.kind),
        str(step.state),
        step.attempt,
        max(0, step.at_ms - step.accepted_ms),
        step.reason or "",
    )


def _container(event: EventView, msg: Record) -> Row:
    container = ContainerEvent.model_validate(event.data)
    return (
        *_common(event, msg),
        container.container_id,
        str(container.state),
        container.reason or "",
        container.exit_code,
    )


def _desktop_session(event: EventView, msg: Record) -> Row:
    session = DesktopSession.model_validate(event.data)
    return (
        *_common(event, msg),
        session.container_id,
        session.session_id,
        session.role,
        datetime.fromtimestamp(session.joined_ms / 1000, UTC),
        datetime.fromtimestamp(session.left_ms / 1000, UTC),
        session.left_ms - session.joined_ms,
        session.bytes_to_viewer,
        session.bytes_from_viewer,
        session.close_reason,
    )


def _rejected(event: EventView, msg: Record) -> Row:
    refused = CommandRejected.model_validate(event.data)
    return (*_common(event, msg), refused.command_id, refused.command_type, refused.reason)


def _text(headers: dict[str, bytes], name: str) -> str:
    value = headers.get(name)
    return value.decode(errors="replace") if value is not None else ""


def _dead_letter(msg: Record) -> Row:
    """A dead letter as it is: reason, error, origin, and the failed record's bytes as text."""
    headers = dict(msg.headers)
    letter = DeadLetter.from_headers(list(msg.headers))
    key = msg.key.decode(errors="replace") if msg.key is not None else ""
    return (
        _text(headers, h.CE_ID),
        _text(headers, h.CE_SUBJECT) or key,
        _text(headers, h.CE_TYPE),
        datetime.fromtimestamp(msg.timestamp / 1000, UTC),
        letter.reason if letter else _text(headers, h.REASON) or "?",
        letter.error if letter else _text(headers, h.ERROR),
        letter.origin.topic if letter else "",
        letter.origin.partition if letter else 0,
        letter.origin.offset if letter else 0,
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
SESSION_COLUMNS = (
    "container_id",
    "session_id",
    "role",
    "joined",
    "left",
    "duration_ms",
    "bytes_to_viewer",
    "bytes_from_viewer",
    "close_reason",
)

PROJECTIONS: tuple[Projection, ...] = (
    Projection(INGEST, "events_ingest", COMMON_COLUMNS, _common),
    Projection(COUNTED, "events_counted", (*COMMON_COLUMNS, "seq", "source_id"), _counted),
    Projection(COMMANDS, "commands", COMMON_COLUMNS, _common),
    Projection(JOBS, "jobs_events", (*COMMON_COLUMNS, *JOB_COLUMNS), _job),
    Projection(
        CONTAINERS,
        "containers_events",
        (*COMMON_COLUMNS, "container_id", "state", "reason", "exit_code"),
        _container,
    ),
    Projection(
        REJECTED,
        "commands_rejected",
        (*COMMON_COLUMNS, "command_id", "command_type", "reason"),
        _rejected,
    ),
    Projection(DLQ, "dead_letters", DEAD_LETTER_COLUMNS, record_to_row=_dead_letter),
    Projection(
        DESKTOP_SESSIONS,
        "desktop_sessions",
        (*COMMON_COLUMNS, *SESSION_COLUMNS),
        _desktop_session,
    ),
)


def for_topic(name: str) -> Projection:
    for projection in PROJECTIONS:
        if projection.topic.name == name:
            return projection
    raise KeyError(f"no projection for topic {name!r}")
