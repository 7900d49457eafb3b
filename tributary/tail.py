"""`tributary tail`: read a topic like kcat, as CloudEvents, without joining a consumer group.

The reader assigns itself every partition (no group id: it commits no offsets and can
never take partitions from a real consumer), reads `read_committed` (aborted transactions
are never shown) and, unless told to follow, stops at the end offsets it saw on start.
Filtering and formatting are pure (`select`, `as_json`, `pretty`).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any

import orjson
from aiokafka import TopicPartition

from schemas import headers as h
from schemas.topics import REGISTRY
from tributary.kafka_clients import committed_reader, partitions, started

_RELATIVE = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name and value is not None:
                return value.decode(errors="replace")
        return None


def physical_topic(name: str, namespace: str) -> str:
    """A logical topic name (`events.counted`) on stack `namespace`; other names as given."""
    return next((s.physical(namespace) for s in REGISTRY if s.name == name), name)


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """`10m`, `2h`, `1d`, `30s` ago, or an ISO 8601 time (UTC when it has no offset)."""
    now = now or datetime.now(UTC)
    relative = _RELATIVE.match(text.strip())
    if relative:
        return now - timedelta(**{_UNITS[relative[2]]: int(relative[1])})
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"--since {text!r}: expected 30s, 10m, 2h, 1d or an ISO 8601 time"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def select(record: Record, user: str | None, event_type: str | None) -> bool:
    """The record is `user`'s (its key) and its type matches `event_type` (a glob)."""
    if user is not None and (record.key or b"").decode(errors="replace") != user:
        return False
    if event_type is not None:
        return fnmatchcase(record.header(h.CE_TYPE) or "", event_type)
    return True


def _data(value: bytes | None) -> Any:
    if value is None:
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return value.decode(errors="replace")


def as_json(record: Record) -> dict[str, Any]:
    """One record as a JSON object: position, CloudEvents attributes, `data`, other headers."""
    attributes = {
        k.removeprefix(h.CE_PREFIX): v.decode(errors="replace")
        for k, v in record.headers
        if k.startswith(h.CE_PREFIX) and v is not None
    }
    others = {
        k: v.decode(errors="replace")
        for k, v in record.headers
        if not k.startswith(h.CE_PREFIX) and v is not None
    }
    return {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": datetime.fromtimestamp(record.timestamp_ms / 1000, UTC).isoformat(),
        "key": (record.key or b"").decode(errors="replace"),
        **attributes,
        "headers": others,
        "data": _data(record.value),
    }


Style = Callable[..., str]


def _plain(text: str, **_: Any) -> str:
    return text


def pretty(record: Record, style: Style = _plain) -> str:
    """Two lines or more: where and what (position, time, user, type, id), then the data."""
    shown = as_json(record)
    head = " ".join(
        [
            style(f"{record.topic}[{record.partition}]@{record.offset}", dim=True),
            style(str(shown.get("time", shown["timestamp"])), fg="blue"),
            style(str(shown.get("subject", shown["key"])), fg="green", bold=True),
            style(str(shown.get("type", "(not a CloudEvent)")), fg="yellow", bold=True),
            style(f"id={shown.get('id', '-')}", dim=True),
        ]
    )
    body = orjson.dumps(shown["data"]).decode()
    if len(body) > 160:  # a large payload, readable: one field per line
        body = orjson.dumps(shown["data"], option=orjson.OPT_INDENT_2).decode()
    extra = [f"  {k}: {v}" for k, v in shown["headers"].items() if k.startswith(h.OURS_PREFIX)]
    return "\n".join([head, *extra, *("  " + line for line in body.splitlines())])


async def read(
    bootstrap: str,
    topic: str,
    *,
    from_beginning: bool = False,
    since: datetime | None = None,
    follow: bool = False,
) -> AsyncIterator[Record]:
    """The records of `topic` from the start asked for; to the end offsets seen at start,
    or on and on with `follow`. Starting at the end without `follow` reads nothing, so the
    end as a start implies following."""
    consumer = committed_reader(bootstrap)
    async with started(consumer):
        tps = [TopicPartition(topic, p) for p in sorted(await partitions(bootstrap, topic))]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        if from_beginning:
            starts = await consumer.beginning_offsets(tps)
        elif since is not None:
            found = await consumer.offsets_for_times(
                {tp: int(since.timestamp() * 1000) for tp in tps}
            )
            starts = {tp: ends[tp] if found[tp] is None else found[tp].offset for tp in tps}
        else:
            starts, follow = dict(ends), True
        for tp in tps:
            consumer.seek(tp, starts[tp])
        pending = {tp for tp in tps if ends[tp] > starts[tp]}
        while follow or pending:
            batch = await consumer.getmany(timeout_ms=500)
            for tp, messages in batch.items():
                for m in messages:
                    if not follow and m.offset >= ends[tp]:
                        continue
                    yield Record(
                        m.topic,
                        m.partition,
                        m.offset,
                        m.timestamp,
                        m.key,
                        m.value,
                        tuple(m.headers or ()),
                    )
            if not follow:
                for tp in list(pending):
                    # Transaction markers take offsets too: done once the position reaches
                    # the end offset seen at start.
                    if await consumer.position(tp) >= ends[tp]:
                        pending.discard(tp)
