"""The ClickHouse projector: Kafka records → batched inserts, exactly once.

Exactly once without FINAL: each flush inserts one block per topic, made of contiguous
offset ranges of its partitions, with a dedup token naming every range
(`topic:partition:first-last,...`), so a retried insert is dropped by the server; and on
(re)assignment the consumer resumes from `max(_offset) + 1` that ClickHouse itself holds,
so a crash between insert and offset commit re-reads nothing that is already in the
table. Kafka offsets are still committed, for lag monitoring.

Resuming from ClickHouse on an assignment is `projections/resume.py`; watching that rows
land (stalls, lag) is `projections/stall_watch.py`.

ClickHouse failing: a failed insert is retried with its token, through a circuit breaker
(`tributary/breakers.py`). After `breaker_failures` failures in a row the circuit opens:
the insert is parked and every partition paused, while the loop keeps polling so the
consumer stays in its group; after `breaker_open_s` the insert probes, and on success the
partitions resume. A rebalance while the insert is parked gives it up and the projector
exits, to resume from what ClickHouse holds: holding the rebalance until ClickHouse is back
would get the member dropped, and an insert landing after the partition moved would
duplicate the next owner's rows. So does an assignment it cannot position (ClickHouse
down when the listener asks where to resume). Compose and Kubernetes restart it.

Throughput: a flush runs behind the loop (the next batch is decoded while ClickHouse
parses this one), and blocks travel as JSON columns that ClickHouse parses, not as
values serialized in Python (`ClickHouse.insert`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable

import structlog
from aiokafka import TopicPartition
from aiokafka.structs import OffsetAndMetadata

from projections.batching import Batcher, PartitionBatch, TopicBlock, by_topic
from projections.clickhouse import ClickHouse
from projections.metrics import BATCH_SECONDS, ROWS_PROJECTED, SKIPPED
from projections.resume import ResumeFromClickHouse
from projections.stall_watch import StallWatch
from projections.tables import PROJECTIONS, UNREADABLE, Projection
from schemas.groups import PROJECTOR_CLICKHOUSE
from tributary import heartbeats, kafka_clients, telemetry
from tributary.breakers import CLICKHOUSE, Breakers, OpenedState
from tributary.kafka_clients import commit_or_log
from tributary.pause import Pause
from tributary.settings import Settings

log = structlog.get_logger(__name__)


class GaveUp(Exception):
    """A parked insert given up (a rebalance while ClickHouse's circuit was open)."""


class Projector:
    """Consumes every projected topic of `settings.namespace` into ClickHouse."""

    def __init__(
        self, settings: Settings, ch: ClickHouse, projections: Iterable[Projection] = PROJECTIONS
    ) -> None:
        self.settings = settings
        self.ch = ch
        self.by_topic = {p.topic.physical(settings.namespace): p for p in projections}
        self.group = PROJECTOR_CLICKHOUSE.physical(settings.namespace)
        self.batcher = Batcher(settings.projector_batch_rows, settings.projector_batch_ms)
        self.consumer = kafka_clients.group_consumer(
            settings.kafka_bootstrap, self.group, max_partition_fetch_bytes=4 * 1024 * 1024
        )
        self.ready = False
        # Next offset ClickHouse still needs, per partition. Records below it are already
        # in the table; records of a partition not positioned yet are fetched again after
        # the listener's seek. The fetcher may hand over records it fetched from Kafka's
        # committed offset before the seek landed: this is what keeps them out.
        self.next_offset: dict[TopicPartition, int] = {}
        self._flush_lock = asyncio.Lock()
        self.watch = StallWatch(self.consumer, self.group, settings.stall_after_s, self._landed)
        self._inserting: dict[TopicPartition, int] = {}  # first offset of each batch in flight
        self._flushing: asyncio.Task[None] | None = None  # the flush the loop reads on behind
        self._failed: BaseException | None = None  # a write that gave up: nothing more goes in
        self.breakers = Breakers(settings.breaker_failures, settings.breaker_open_s)
        self._held: set[TopicPartition] = set()  # paused while ClickHouse's circuit is open
        self._giving_up = False
        self._stopping = False
        self.revoking = False  # a revocation waits for the flush: a parked one gives up
        self._calling = asyncio.Lock()  # held while an insert is in ClickHouse's hands

    @property
    def parked(self) -> bool:
        """ClickHouse's circuit is open: the insert in flight waits for its probe."""
        return CLICKHOUSE in self.breakers.open()

    @property
    def stalled(self) -> list[str]:
        """Partitions with lag whose rows have not landed for `stall_after_s`."""
        return self.watch.stalled

    async def run(self, stop: asyncio.Event) -> None:
        """Project until `stop` is set; then flush what is batched and leave the group."""
        self.consumer.subscribe(list(self.by_topic), listener=ResumeFromClickHouse(self))
        watcher: asyncio.Task[None] | None = None
        try:
            # Inside the try: a start that fails half-way is stopped too.
            await self.consumer.start()
            self.ready = not stop.is_set()  # a SIGTERM during the start counts
            watcher = asyncio.create_task(self.watch.run(stop), name="projector-progress")
            while not stop.is_set():
                heartbeats.beat("projector")
                records = await self.consumer.getmany(timeout_ms=100, max_records=10_000)
                for tp, messages in records.items():
                    self._add(tp, messages)
                if self._flushing is not None and self._flushing.done():
                    await self._flushed()  # raises now if that flush gave up
                if self._failed is not None:  # an assignment it could not position
                    raise RuntimeError("gave up; restart to resume") from self._failed
                if self.batcher.due():
                    if self._flushing is None or self._flushing.done():
                        await self._flush_behind()
                    else:  # one flush at a time: wait for it, but go on polling (a flush
                        # retrying or parked must not keep the consumer from its group)
                        await asyncio.wait({self._flushing}, timeout=1.0)
                # getmany does not yield while records are buffered: let the flush run.
                await asyncio.sleep(0)
            self._stopping = True  # a parked insert gives up: the restart re-reads its rows
            with contextlib.suppress(GaveUp):
                await self._flush_behind()
                await self._flushed()
        finally:
            self.ready = False
            heartbeats.forget("projector")
            if watcher is not None:
                watcher.cancel()
            if self._flushing is not None and not self._flushing.done():
                self._flushing.cancel()  # a retried insert carries the same token: no harm
            await self.consumer.stop()

    async def _flush_behind(self) -> None:
        """Start writing what is batched, and return: the loop decodes the next batch while
        ClickHouse parses this one (chDB does so without the GIL, on the other core).

        One flush at a time. The batches are taken now, under the lock, and the lock goes
        with the flush, so flushes stay in offset order (resuming from max(_offset)
        relies on it) and `flush()`/`paused()` wait for this one.
        """
        await self._flushed()
        await self._flush_lock.acquire()
        batches = self._take()
        self._flushing = asyncio.create_task(self._write_then_release(batches))

    async def _flushed(self) -> None:
        """Wait for the flush in flight, if any; raise what it raised."""
        flushing, self._flushing = self._flushing, None
        if flushing is not None:
            await flushing

    async def _write_then_release(self, batches: list[PartitionBatch]) -> None:
        try:
            await self._write(batches)
        except BaseException as exc:
            # These rows are lost to this process: a later batch of the same partition must
            # not land before the restart re-reads them (max(_offset) would skip them).
            self._failed = exc
            raise
        finally:
            self._flush_lock.release()

    def _landed(self, tp: TopicPartition, position: int) -> int:
        """Offsets below this are in ClickHouse (or were skipped): the consumer's position,
        held back by rows still batched or being inserted. Progress is rows landed, not
        records read: a hung insert behind a fully read topic is still a stall."""
        waiting = (self.batcher.first(tp.topic, tp.partition), self._inserting.get(tp))
        return min([position, *(o for o in waiting if o is not None)])

    def _add(self, tp: TopicPartition, messages: list) -> None:  # type: ignore[type-arg]
        projection = self.by_topic[tp.topic]
        expected = self.next_offset.get(tp)
        if expected is None:
            return  # revoked, or not positioned yet: the assignment's seek re-reads these
        for msg in messages:
            if msg.offset < expected:
                continue
            expected = msg.offset + 1
            try:
                row = projection.row(msg)
            except UNREADABLE as exc:
                # Only gateway-validated events reach projected topics; anything else is
                # the DLQ's business (the agents dead-letter it). Count and say so.
                SKIPPED.labels(topic=projection.topic.name).inc()
                log.warning(
                    "skipped record",
                    topic=tp.topic,
                    partition=tp.partition,
                    offset=msg.offset,
                    error=repr(exc),
                )
                continue
            if row is None:  # an older edition of a type: the current one is projected
                continue
            if telemetry.enabled:  # the record's trace reaches the projector (batched next)
                with telemetry.span(f"project to {projection.table}", msg.headers):
                    pass
            self.batcher.add(tp.topic, tp.partition, msg.offset, row)
        self.next_offset[tp] = expected

    @contextlib.asynccontextmanager
    async def paused(self) -> AsyncIterator[None]:
        """Flush what is batched, then hold every further insert until the block exits."""
        async with self._flush_lock:
            await self._flush()
            yield

    async def flush(self) -> None:
        """Insert every pending batch, then commit the offsets after them."""
        async with self._flush_lock:
            await self._flush()

    async def _flush(self) -> None:
        try:
            await self._write(self._take())
        except BaseException as exc:
            self._failed = self._failed or exc  # as `_write_then_release`: rows lost to us
            raise

    def _take(self) -> list[PartitionBatch]:
        """Everything batched, now in flight (progress counts it as not landed yet)."""
        batches = self.batcher.drain()
        self._inserting = {TopicPartition(b.topic, b.partition): b.first for b in batches}
        return batches

    async def _write(self, batches: list[PartitionBatch]) -> None:
        """Insert `batches` (one block per topic), then commit the offsets after them."""
        if self._failed is not None:
            raise RuntimeError("an earlier insert gave up; restart to resume") from self._failed
        if not batches:
            return
        with BATCH_SECONDS.time():
            for block in by_topic(batches):
                await self._insert(block)
                for batch in block.batches:
                    self._inserting.pop(TopicPartition(batch.topic, batch.partition))
        offsets = {
            TopicPartition(b.topic, b.partition): OffsetAndMetadata(b.last + 1, "") for b in batches
        }
        # For lag monitoring only: positions come from ClickHouse on every assignment.
        await commit_or_log(self.consumer, offsets, group=self.group)

    async def _insert(self, block: TopicBlock) -> None:
        """Insert `block` until it lands (the same token every time), through ClickHouse's
        circuit breaker."""
        projection = self.by_topic[block.topic]
        pause = Pause()
        while True:
            await self._park_while_open()

            async def insert() -> None:
                async with self._calling:
                    if self._giving_up:  # the partitions are going: nothing may land now
                        raise GaveUp("a rebalance while ClickHouse's circuit was open")
                    await asyncio.to_thread(
                        self.ch.insert,
                        projection.table,
                        block.rows,
                        projection.columns,
                        block.token,
                    )

            try:
                await self.breakers.call(CLICKHOUSE, insert)
            except OpenedState:
                continue
            except Exception as exc:  # the server's errors are not one type
                log.warning(
                    "insert failed; retrying with the same token",
                    token=block.token,
                    error=str(exc),
                )
                if not self.parked:
                    await pause.wait()
                continue
            ROWS_PROJECTED.labels(table=projection.table).inc(len(block.rows))
            self._release_partitions()
            if self._giving_up:  # this one landed before the partitions went: no more
                raise GaveUp("a rebalance while ClickHouse's circuit was open")
            return

    async def _park_while_open(self) -> None:
        """While ClickHouse's circuit is open: every partition paused, the insert waiting."""
        if self._giving_up:
            raise GaveUp("a rebalance while ClickHouse's circuit was open")
        if not self.parked:
            return
        self._held = set(self.consumer.assignment())
        self.consumer.pause(*self._held)
        log.warning(
            "clickhouse circuit open: insert parked, partitions paused", partitions=len(self._held)
        )

        def going() -> None:
            heartbeats.beat("projector")
            if self._giving_up or self._stopping or self.revoking:
                raise GaveUp("a rebalance or a stop while ClickHouse's circuit was open")

        await self.breakers.parked(CLICKHOUSE, going)

    def _release_partitions(self) -> None:
        if self._held:
            held, self._held = self._held, set()
            self.consumer.resume(*(tp for tp in held if tp in self.consumer.assignment()))
            log.info("clickhouse circuit closed: partitions resumed", partitions=len(held))

    async def give_up_parked(self) -> None:
        """A rebalance while the insert is parked: give it up, after any insert already in
        ClickHouse's hands has answered (it may land; nothing after it will)."""
        self._giving_up = True
        async with self._calling:
            pass

    def cannot_position(self, error: BaseException) -> None:
        """The assignment could not be positioned: the loop raises and the process exits."""
        self._failed = error
