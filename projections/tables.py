"""What each projected topic becomes in ClickHouse: table, columns, and row mapping (pure)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from schemas.envelope import EventView
from schemas.topics import COMMANDS, CONTAINERS, COUNTED, INGEST, JOBS, REJECTED, TopicSpec

Row = tuple[Any, ...]

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
    """Topic `topic` is projected into `table` with `columns`, one row per record."""

    topic: TopicSpec
    table: str
    columns: tuple[str, ...]
    to_row: Callable[[EventView, str, int, int], Row]


def _common(event: EventView, topic: str, partition: int, offset: int) -> Row:
    return (
        event.id,
        event.subject,
        event.type,
        event.source,
        event.time,
        orjson.dumps(event.data).decode(),
        topic,
        partition,
        offset,
    )


def _counted(event: EventView, topic: str, partition: int, offset: int) -> Row:
    return (
        *_common(event, topic, partition, offset),
        int(event.data["seq"]),
        event.data["source_id"],
    )


def _job(event: EventView, topic: str, partition: int, offset: int) -> Row:
    data = event.data
    at_ms = int(data.get("at_ms", 0))
    return (
        *_common(event, topic, partition, offset),
        str(data["job_id"]),
        str(data.get("kind", "")),
        str(data.get("state", "")),
        int(data.get("attempt", 0)),
        max(0, at_ms - int(data.get("accepted_ms", at_ms))),
        str(data.get("reason", "")),
    )


def _container(event: EventView, topic: str, partition: int, offset: int) -> Row:
    return (
        *_common(event, topic, partition, offset),
        str(event.data["container_id"]),
        str(event.data["state"]),
    )


def _rejected(event: EventView, topic: str, partition: int, offset: int) -> Row:
    return (
        *_common(event, topic, partition, offset),
        str(event.data["command_id"]),
        str(event.data["command_type"]),
        str(event.data["reason"]),
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
)


def for_topic(name: str) -> Projection:
    for projection in PROJECTIONS:
        if projection.topic.name == name:
            return projection
    raise KeyError(f"no projection for topic {name!r}")
