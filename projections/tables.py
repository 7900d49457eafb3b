"""What each projected topic becomes in ClickHouse: table, columns, and row mapping (pure)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from schemas.envelope import EventView
from schemas.topics import COUNTED, INGEST, TopicSpec

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


PROJECTIONS: tuple[Projection, ...] = (
    Projection(INGEST, "events_ingest", COMMON_COLUMNS, _common),
    Projection(COUNTED, "events_counted", (*COMMON_COLUMNS, "seq", "source_id"), _counted),
)


def for_topic(name: str) -> Projection:
    for projection in PROJECTIONS:
        if projection.topic.name == name:
            return projection
    raise KeyError(f"no projection for topic {name!r}")
