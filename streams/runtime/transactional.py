"""The transactional loop: consume → decide (pure) → outputs + changelog + offsets, one transaction.

This runs the agents whose hop is exactly-once (the counter, the command agent, the
executors' decisions).
Each input partition has its own transactional producer (`<group>-<partition>`), and the
order of things on an assignment is what makes a handover exactly-once:

1. Start the partition's producer. Its InitProducerId fences the previous owner, and the
   broker first completes (commits or aborts) any transaction the previous owner left open.
2. Restore the partition's tables from their changelogs (read_committed), which now hold
   exactly what the previous owner committed, including the position table: the next input
   offset, written in the same transactions as the state (`streams.runtime.recovery`).
3. Seek to that position.

A batch of one partition is processed against its tables; the outputs, the table changes
(to the changelog partition of the same number) and the next input offset are one
transaction. The tables take the changes only after the commit. Records below the offset
a partition is known to be at (fetched before a rebalance or a seek) are dropped.

A processor with side effects (the executors) also returns `Effect`s: they go to its
effect step (`EffectStep`) only after the transaction that decided them committed, and
outside the loop's lock, so no transaction is open while Docker or Triton work. On a
takeover the effect step gets what the restored tables say is still running.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError, ProducerFenced
from aiokafka.structs import ConsumerRecord

from schemas import groups, tables
from streams.metrics import BATCH_RECORDS, COMMIT_SECONDS, EVENTS_PROCESSED
from streams.runtime import decide, recovery, state, stores
from streams.runtime.outputs import Effect, Output
from streams.runtime.processor import EffectStep, Processor
from streams.runtime.recovery import POSITION
from tributary import heartbeats, kafka_clients
from tributary.settings import Settings

log = structlog.get_logger(__name__)


@dataclass
class Owned:
    """A partition this loop owns: its producer, its tables, where its input goes on from."""

    producer: AIOKafkaProducer
    tables: state.Tables
    next_offset: int


class Fenced(Exception):
    """Another worker owns a partition now (we were too slow, or thought dead)."""


class AssignmentFailed(Exception):
    """Taking over partitions failed (producer start, changelog restore)."""


class TransactionalLoop:
    def __init__(
        self,
        settings: Settings,
        processor: Processor,
        effects: EffectStep | None = None,
        group: str | None = None,  # default: the agent's group in schemas.groups
    ) -> None:
        self.settings = settings
        self.processor = processor
        self.effects = effects
        self._decided: list[Effect] = []  # committed, not yet handed to the effect step
        self.group = group or groups.of_agent(processor.name).physical(settings.namespace)
        self.position_table = tables.position_table(processor.name)
        self.table_names = (*processor.tables, self.position_table)
        self.changelogs = {
            name: tables.changelog_topic(settings.namespace, name) for name in self.table_names
        }
        self._owned: dict[int, Owned] = {}
        # Where owned partitions' tables keep their entries; the setting's, from run().
        self._backend: state.Backend = state.MemoryBackend()
        self._lock = asyncio.Lock()
        self._consumer: AIOKafkaConsumer | None = None
        # aiokafka logs and swallows an exception raised in a rebalance listener, and the
        # consumer would go on fetching partitions nobody owns: the loop raises it instead.
        self._assign_failed: BaseException | None = None
        self.assigned = False  # at least one assignment completed since start
        self.rebalancing = False

    # -- public ------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Process until `stop`; a fenced or broken loop leaves the group and joins again
        (not ready meanwhile), restoring its partitions from their changelogs."""
        self._backend = stores.open_backend(self.settings, self.group)
        try:
            await self._run_until(stop)
        finally:
            heartbeats.forget(self.processor.name)  # ended on purpose: not stuck
            self._backend.close()

    async def _run_until(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self._run_once(stop)
            except (Fenced, AssignmentFailed, KafkaError) as exc:
                log.warning(
                    "transactional loop restarting", loop=self.processor.name, error=repr(exc)
                )
            except Exception:
                log.exception("transactional loop failed; restarting", loop=self.processor.name)
            else:
                return
            self.assigned = False
            heartbeats.beat(self.processor.name)  # restarting is going round too
            await asyncio.sleep(1)

    def progress(self) -> list[tuple[TopicPartition, int, int | None]]:
        """(partition, next offset to process, high watermark) for each owned partition."""
        consumer = self._consumer
        rows = []
        for partition, owned in list(self._owned.items()):
            tp = TopicPartition(self.processor.source, partition)
            end = consumer.highwater(tp) if consumer is not None else None
            rows.append((tp, owned.next_offset, end))
        return rows

    @property
    def ready(self) -> bool:
        return self.assigned and not self.rebalancing

    # -- the loop ----------------------------------------------------------------------

    async def _run_once(self, stop: asyncio.Event) -> None:
        s = self.settings
        consumer = kafka_clients.group_consumer(
            s.kafka_bootstrap,
            self.group,
            session_timeout_ms=int(s.worker_session_timeout_s * 1000),
            heartbeat_interval_ms=int(max(1.0, s.worker_session_timeout_s / 4) * 1000),
        )
        consumer.subscribe([self.processor.source], listener=_Listener(self, consumer))
        self._consumer = consumer
        self._assign_failed = None
        try:
            # Inside the try: run() retries a failed start every second, and a start that
            # failed after the bootstrap would otherwise leave its connections open each time.
            await consumer.start()
            while not stop.is_set():
                heartbeats.beat(self.processor.name)
                batch = await consumer.getmany(timeout_ms=200, max_records=2000)
                if self._assign_failed is not None:
                    raise AssignmentFailed(repr(self._assign_failed)) from self._assign_failed
                if batch:
                    async with self._lock:
                        await self._process_all(consumer, batch)
                await self._hand_over_effects()
        finally:
            async with self._lock:
                await self._release(list(self._owned))
            # stop() lets a rebalance under way finish first: a takeover that was waiting
            # for the lock runs now and owns producers again. Nothing can take over after it.
            await consumer.stop()
            async with self._lock:
                await self._release(list(self._owned))
            self.assigned = False
            self._consumer = None

    async def _process_all(
        self,
        consumer: AIOKafkaConsumer,
        batch: dict[TopicPartition, list[ConsumerRecord]],  # type: ignore[type-arg]
    ) -> None:
        """Each partition's records in its own transaction, the partitions' transactions at
        once (each has its own producer): a batch waits for its slowest commit, not for the
        sum of them. Every one finishes (commits or aborts) before a failure is raised."""
        outcomes = await asyncio.gather(
            *(self._process(consumer, tp, records) for tp, records in batch.items()),
            return_exceptions=True,
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _process(
        self, consumer: AIOKafkaConsumer, tp: TopicPartition, records: Sequence[ConsumerRecord]
    ) -> None:
        owned = self._owned.get(tp.partition)
        if owned is None:
            return  # revoked since the fetch
        fresh = [r for r in records if r.offset >= owned.next_offset]
        if len(fresh) < len(records):
            # Fetched before our seek (aiokafka may still reset a new partition's position
            # once after it): processed already, or not ours to process.
            log.info(
                "dropping records below the partition's position",
                partition=tp.partition,
                fetched=records[0].offset,
                expected=owned.next_offset,
            )
            if not fresh:
                consumer.seek(tp, owned.next_offset)
                return
        records = fresh
        outputs: list[Output] = []
        effects: list[Effect] = []
        for record in records:
            for out in decide.traced(self.processor, record, owned.tables, tp.partition):
                if isinstance(out, Effect):
                    effects.append(out)
                else:
                    outputs.append(out)
        self.processor.tidy(owned.tables, records[-1].timestamp)
        owned.tables[self.position_table][POSITION] = records[-1].offset + 1
        BATCH_RECORDS.labels(agent=self.processor.name).observe(len(records))
        try:
            with COMMIT_SECONDS.labels(agent=self.processor.name).time():
                await self._commit(owned, tp, outputs, records[-1].offset + 1)
        except ProducerFenced as exc:
            owned.tables.discard()
            raise Fenced(f"partition {tp.partition}") from exc
        except BaseException:
            owned.tables.discard()
            raise
        for outcome, n in owned.tables.apply().items():  # counted once, on commit
            EVENTS_PROCESSED.labels(agent=self.processor.name, outcome=outcome).inc(n)
        owned.next_offset = records[-1].offset + 1
        self._decided += effects

    async def _hand_over_effects(self) -> None:
        """Committed effects (and resumed ones) to the effect step, outside the lock."""
        if self.effects is None or not self._decided:
            return
        effects, self._decided = self._decided, []
        await self.effects.submit(effects)

    async def _commit(
        self, owned: Owned, tp: TopicPartition, outputs: list[Output], next_offset: int
    ) -> None:
        producer = owned.producer
        await producer.begin_transaction()
        try:
            sent = [
                await producer.send(o.topic, o.value, key=o.key, headers=o.headers) for o in outputs
            ]
            for table, key, value in owned.tables.changes():
                k, v = state.encode(key, value)
                sent.append(
                    await producer.send(self.changelogs[table], v, key=k, partition=tp.partition)
                )
            await asyncio.gather(*sent)
            await producer.send_offsets_to_transaction({tp: next_offset}, self.group)
            await producer.commit_transaction()
        except ProducerFenced:
            raise
        except BaseException:
            await producer.abort_transaction()
            raise

    # -- assignment --------------------------------------------------------------------

    async def revoked(self, partitions: list[int]) -> None:
        """Called by the consumer in a rebalance: a batch in progress commits first."""
        self.rebalancing = True
        async with self._lock:
            await self._release(partitions)

    async def assigned_to(self, consumer: AIOKafkaConsumer, partitions: list[int]) -> None:
        """Called by the consumer in a rebalance: fence, restore, seek."""
        try:
            async with self._lock:
                await self._assign(consumer, partitions)
        except Exception as exc:
            self._assign_failed = exc
            raise
        self.assigned = True
        self.rebalancing = False

    async def _assign(self, consumer: AIOKafkaConsumer, partitions: list[int]) -> None:
        started = time.monotonic()
        new = [p for p in partitions if p not in self._owned]
        producers = [self._producer(p) for p in new]
        try:
            # InitProducerId fences the previous owner of each partition. One start fails:
            # the others are cancelled.
            async with asyncio.TaskGroup() as starts:
                for producer in producers:
                    starts.create_task(producer.start())
            tps = [TopicPartition(self.processor.source, p) for p in new]
            async with asyncio.TaskGroup() as restores:  # one fails: the others are cancelled
                tasks = [
                    restores.create_task(
                        recovery.restore_to(consumer, tp, self._restore, self.position_table)
                    )
                    for tp in tps
                ]
            results = [task.result() for task in tasks]
        except BaseException:
            # Every one, started, half-started or cancelled: each holds broker connections.
            await asyncio.gather(*(p.stop() for p in producers), return_exceptions=True)
            for partition in new:
                self._backend.release(partition)
            raise
        restored = dict(zip(new, results, strict=True))
        for partition, producer in zip(new, producers, strict=True):
            tables_, position = restored[partition]
            consumer.seek(TopicPartition(self.processor.source, partition), position)
            self._owned[partition] = Owned(producer, tables_, position)
            if self.effects is not None:
                self._decided += self.effects.resume(partition, tables_)
        log.info(
            "partitions assigned",
            loop=self.processor.name,
            partitions=sorted(partitions),
            restored_s=round(time.monotonic() - started, 2),
            offsets={p: restored[p][1] for p in new},
        )

    def _producer(self, partition: int) -> AIOKafkaProducer:
        """The partition's transactional producer, not started yet."""
        return kafka_clients.producer(
            self.settings.kafka_bootstrap,
            transactional_id=tables.transactional_id(self.group, partition),
        )

    async def _restore(self, partition: int) -> state.Tables:
        """The partition's tables as its changelogs hold them (committed records only)."""
        return await recovery.read_tables(
            self.settings.kafka_bootstrap,
            self._backend,
            partition,
            self.changelogs,
            lambda: heartbeats.beat(self.processor.name),
        )

    async def _release(self, partitions: list[int]) -> None:
        for partition in partitions:
            owned = self._owned.pop(partition, None)
            if owned is None:
                continue
            self._backend.release(partition)
            try:
                await owned.producer.stop()
            except KafkaError as exc:  # fenced already: nothing of ours is left to flush
                log.info("producer stopped with an error", partition=partition, error=repr(exc))


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Hands partitions over at batch boundaries."""

    def __init__(self, loop: TransactionalLoop, consumer: AIOKafkaConsumer) -> None:
        self.loop = loop
        self.consumer = consumer

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.loop.revoked([tp.partition for tp in revoked])

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self.loop.assigned_to(self.consumer, [tp.partition for tp in assigned])
