"""Rebuilding a projected table from its topic: read history, build a new table, swap.

The replay reads the topic's partitions with its own group-less consumer from a start
(offset or timestamp, default the beginning) to an end (default the end at start
time), inserts into `<table>__rebuild_<id>` (same DDL), checks the row count equals
the records read, then, with the live projector's flushes held, copies the rows the
live table gained past the replay's end and swaps the two tables with one
`EXCHANGE TABLES`. Readers see the old table or the new one, never an empty one.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition

from projections.batching import Batcher, by_topic
from projections.clickhouse import ClickHouse
from projections.migrations import rollups_of
from projections.projector import Projector
from projections.tables import UNREADABLE, Projection, for_topic
from tributary import kafka_clients
from tributary.kafka_clients import partitions as kafka_partitions
from tributary.kafka_clients import started

log = structlog.get_logger(__name__)

Bound = int | datetime | None


@dataclass
class ReplayStatus:
    """What a replay has done so far; served to `tributary replay` for its progress bar."""

    id: str
    topic: str
    table: str
    state: str = "running"  # running → swapping → done | failed
    total: int = 0
    read: int = 0
    inserted: int = 0
    skipped: int = 0
    caught_up: int = 0
    started: float = field(default_factory=time.monotonic)
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = self.read / elapsed
        remaining = max(self.total - self.read, 0)
        return {
            "id": self.id,
            "topic": self.topic,
            "table": self.table,
            "state": self.state,
            "total": self.total,
            "read": self.read,
            "inserted": self.inserted,
            "skipped": self.skipped,
            "caught_up": self.caught_up,
            "elapsed_s": round(elapsed, 2),
            "rows_per_s": round(rate),
            "eta_s": round(remaining / rate, 1) if rate > 0 and self.state == "running" else None,
            "error": self.error,
        }


async def _offsets(
    consumer: AIOKafkaConsumer,
    tps: list[TopicPartition],
    bound: Bound,
    default: dict[TopicPartition, int],
    latest: dict[TopicPartition, int],
) -> dict[TopicPartition, int]:
    """Per-partition offsets for `bound`: as given, by timestamp, or `default`."""
    if bound is None:
        return dict(default)
    if isinstance(bound, int):
        return dict.fromkeys(tps, bound)
    found = await consumer.offsets_for_times({tp: int(bound.timestamp() * 1000) for tp in tps})
    return {tp: (found[tp].offset if found.get(tp) else latest[tp]) for tp in tps}


class Replay:
    """One rebuild of `projection.table` from its topic, run inside the projector process."""

    def __init__(
        self, projector: Projector, topic_name: str, start: Bound = None, end: Bound = None
    ) -> None:
        self.projector = projector
        self.ch: ClickHouse = projector.ch
        if self.ch.cluster:
            # Rebuilding means a second set of shards and an exchange on every node.
            raise ValueError("replays are not supported on a ClickHouse cluster yet")
        self.projection: Projection = for_topic(topic_name)
        self.topic = self.projection.topic.physical(projector.settings.namespace)
        self.start_bound, self.end_bound = start, end
        self.status = ReplayStatus(uuid.uuid4().hex[:12], self.topic, self.projection.table)
        self.new_table = f"{self.projection.table}__rebuild_{self.status.id}"

    async def run(self) -> ReplayStatus:
        try:
            await self._run()
            self.status.state = "done"
        except Exception as exc:  # report every failure to the caller, then clean up
            self.status.state = "failed"
            self.status.error = repr(exc)
            log.error("replay failed", id=self.status.id, error=repr(exc))
            for table in [self.new_table] + [
                f"{r.name}__rebuild_{self.status.id}" for r in rollups_of(self.projection.table)
            ]:
                await asyncio.to_thread(
                    self.ch.command, f"DROP TABLE IF EXISTS {self.ch.database}.{table}"
                )
        return self.status

    async def _run(self) -> None:
        db = self.ch.database
        await asyncio.to_thread(
            self.ch.command, f"CREATE TABLE {db}.{self.new_table} AS {db}.{self.projection.table}"
        )
        consumer = kafka_clients.committed_reader(self.projector.settings.kafka_bootstrap)
        async with started(consumer):
            ends = await self._read(consumer)
        _, rows = await asyncio.to_thread(
            self.ch.query, f"SELECT count() FROM {db}.{self.new_table}"
        )
        if rows[0][0] != self.status.inserted:
            raise RuntimeError(
                f"{self.new_table} holds {rows[0][0]} rows, read {self.status.inserted}"
            )
        self.status.state = "swapping"
        async with self.projector.paused():
            await self._catch_up(ends)
            swaps = [(self.projection.table, self.new_table)]
            for rollup in rollups_of(self.projection.table):
                rebuilt = f"{rollup.name}__rebuild_{self.status.id}"
                swaps.append((rollup.name, rebuilt))
                for sql in (
                    f"CREATE TABLE {db}.{rebuilt} AS {db}.{rollup.name}",
                    f"INSERT INTO {db}.{rebuilt} {rollup.select_from(db, self.new_table)}",
                ):
                    await asyncio.to_thread(self.ch.command, sql)
            for live, rebuilt in swaps:
                await asyncio.to_thread(
                    self.ch.command, f"EXCHANGE TABLES {db}.{live} AND {db}.{rebuilt}"
                )
        for _, old in swaps:
            await asyncio.to_thread(self.ch.command, f"DROP TABLE {db}.{old}")

    async def _read(self, consumer: AIOKafkaConsumer) -> dict[TopicPartition, int]:
        partitions = await kafka_partitions(self.projector.settings.kafka_bootstrap, self.topic)
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        beginning = await consumer.beginning_offsets(tps)
        latest = await consumer.end_offsets(tps)
        starts = await _offsets(consumer, tps, self.start_bound, beginning, latest)
        ends = await _offsets(consumer, tps, self.end_bound, latest, latest)
        starts = {tp: max(starts[tp], beginning[tp]) for tp in tps}
        ends = {tp: min(max(ends[tp], starts[tp]), latest[tp]) for tp in tps}
        self.status.total = sum(ends[tp] - starts[tp] for tp in tps)
        for tp in tps:
            consumer.seek(tp, starts[tp])
        open_tps = {tp for tp in tps if starts[tp] < ends[tp]}
        batcher = Batcher(self.projector.settings.projector_batch_rows, 1000)
        while open_tps:
            records = await consumer.getmany(*open_tps, timeout_ms=200, max_records=20_000)
            for tp, messages in records.items():
                for msg in messages:
                    if msg.offset >= ends[tp]:
                        break
                    self.status.read += 1
                    try:
                        row = self.projection.row(msg)
                    except UNREADABLE:
                        self.status.skipped += 1
                        continue
                    if row is None:  # an older edition of a type: the current one is kept
                        continue
                    batcher.add(tp.topic, tp.partition, msg.offset, row)
            for tp in list(open_tps):
                if await consumer.position(tp) >= ends[tp]:
                    open_tps.discard(tp)
                    consumer.pause(tp)
            if batcher.due() or not open_tps:
                await self._insert(batcher)
        return ends

    async def _insert(self, batcher: Batcher) -> None:
        for block in by_topic(batcher.drain()):
            rows = block.rows
            await asyncio.to_thread(
                self.ch.insert,
                self.new_table,
                rows,
                self.projection.columns,
                f"replay:{self.status.id}:{block.token}",
            )
            self.status.inserted += len(rows)

    async def _catch_up(self, ends: dict[TopicPartition, int]) -> None:
        """Copy rows the live table gained past the replay's end, so the swap loses none."""
        db, live, new = self.ch.database, self.projection.table, self.new_table
        columns = ", ".join(self.projection.columns)
        for tp, end in ends.items():
            where = f"_topic = '{tp.topic}' AND _partition = {tp.partition} AND _offset >= {end}"
            await asyncio.to_thread(
                self.ch.command,
                f"INSERT INTO {db}.{new} ({columns}) "
                f"SELECT {columns} FROM {db}.{live} WHERE {where}",
            )
            _, rows = await asyncio.to_thread(
                self.ch.query, f"SELECT count() FROM {db}.{new} WHERE {where}"
            )
            self.status.caught_up += int(rows[0][0])
