"""The retry scheduler: hands each record on the retry topic to its target when it is due.

Records carry a due time (epoch ms) and a target topic (`schemas.headers`). A
partition's records are forwarded in order; when the head record is not due yet the
partition is paused and the consumer seeks back to it, to be resumed at its due
time. Nothing sleeps per record and other partitions keep flowing. A record's due time
is never earlier than the one before it in the same partition by more than the
jitter, so head-of-line waiting costs little.

At-least-once: a record is forwarded, then its offset committed. A crash in between
forwards it again; the executors dedup by (job id, attempt) and the command agent by
the debounce key, so a second copy has no second effect.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord

from schemas import headers as h
from schemas.groups import RETRY_SCHEDULER
from schemas.topics import RETRY
from tributary import heartbeats, kafka_clients
from tributary.kafka_clients import commit_or_log, started
from tributary.settings import Settings

log = structlog.get_logger(__name__)


def wait_ms(due_ms: int | None, now_ms: int) -> int:
    """How long until a record is due (0: now). A record without a due time is due."""
    return 0 if due_ms is None else max(0, due_ms - now_ms)


def routing(record: ConsumerRecord) -> tuple[int | None, str | None, list[tuple[str, bytes]]]:
    """(due ms, target topic, the headers to forward without the scheduling ones)."""
    due: int | None = None
    target: str | None = None
    rest: list[tuple[str, bytes]] = []
    for name, value in record.headers or ():
        if name == h.DUE_MS:
            due = int(value)
        elif name == h.TARGET:
            target = value.decode()
        else:
            rest.append((name, value))
    return due, target, rest


class RetryScheduler:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = RETRY.physical(settings.namespace)
        self._resume_at: dict[TopicPartition, float] = {}

    async def run(self, stop: asyncio.Event) -> None:
        bootstrap = self.settings.kafka_bootstrap
        group = RETRY_SCHEDULER.physical(self.settings.namespace)
        consumer = kafka_clients.group_consumer(bootstrap, group, self.topic)
        producer = kafka_clients.producer(bootstrap)
        # If the producer cannot start, the consumer still leaves its group.
        async with started(consumer), started(producer), _forgotten_at_end():
            while not stop.is_set():
                heartbeats.beat("retry-scheduler")
                self._resume_due(consumer)
                batch = await consumer.getmany(timeout_ms=200, max_records=500)
                for tp, records in batch.items():
                    await self._forward(consumer, producer, tp, records)

    def _resume_due(self, consumer: AIOKafkaConsumer) -> None:
        now = time.time()
        due = [tp for tp, at in self._resume_at.items() if at <= now]
        assigned = consumer.assignment()
        for tp in due:
            del self._resume_at[tp]
            if tp in assigned:
                consumer.resume(tp)

    async def _forward(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        tp: TopicPartition,
        records: list[ConsumerRecord],
    ) -> None:
        now_ms = int(time.time() * 1000)
        for record in records:
            due, target, headers = routing(record)
            wait = wait_ms(due, now_ms)
            if wait:
                consumer.pause(tp)
                consumer.seek(tp, record.offset)
                self._resume_at[tp] = time.time() + wait / 1000
                break
            if target is None:
                log.error("retry record without a target; skipped", offset=record.offset)
            else:
                await producer.send_and_wait(target, record.value, key=record.key, headers=headers)
            await commit_or_log(consumer, {tp: record.offset + 1}, group="retry-scheduler")


@contextlib.asynccontextmanager
async def _forgotten_at_end() -> AsyncIterator[None]:
    """The scheduler's heartbeat is no longer expected once it ends on purpose."""
    try:
        yield
    finally:
        heartbeats.forget("retry-scheduler")
