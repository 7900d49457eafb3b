"""Concurrent single-record sends as one record batch per partition.

Each aiokafka `send` costs ~35-40 µs of Python per record (metadata wait, partitioner,
accumulator, a future per record), and a per-request timeout with uvloop's timers ~30 µs
more (bench/RESULTS.md, issue 4). Here the records of concurrent requests go into one
`BatchBuilder` per partition, handed over with `send_batch`; each batch gets one timer,
and its senders share one future.

Partitions are chosen by aiokafka's `DefaultPartitioner` (murmur2 of the key, like
aiokafka's own `send` and the Java client), so a user's events land on the same partition
whichever path produced them. Batches of a partition are handed over in arrival order, one
flush at a time, and the producer is idempotent: a user's order holds.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.structs import RecordMetadata

from gateway.coalesce import Coalescer
from gateway.metrics import KAFKA_ACK_SECONDS
from schemas.envelope import Headers


@dataclass(frozen=True)
class Record:
    topic: str
    key: bytes
    value: bytes
    headers: Headers


@dataclass(frozen=True)
class _Queued:
    record: Record
    deadline: float  # loop time by which the broker must have acknowledged it


@dataclass(frozen=True)
class _Slot:
    """Where a record went: its batch's acknowledgement and its offset inside the batch."""

    ack: asyncio.Future[RecordMetadata]
    relative_offset: int


class RecordBatcher:
    """`send(record)` → (partition, offset) once the broker acknowledged it."""

    def __init__(self, producer: AIOKafkaProducer, timeout_s: float, max_record_bytes: int) -> None:
        self._producer = producer
        self._timeout_s = timeout_s
        self._max_record_bytes = max_record_bytes
        self._partitioner = DefaultPartitioner()
        self._calls: Coalescer[_Queued, _Slot] = Coalescer(self._hand_over)

    async def send(self, record: Record) -> tuple[int, int]:
        """Raises `TimeoutError` without an ack within `timeout_s` of the call, or the
        producer's error. (A record still waiting for its turn when another hand-over is
        held up, by a full buffer, say, fails when its turn comes if it is past due then.)"""
        deadline = asyncio.get_running_loop().time() + self._timeout_s
        slot = await self._calls.submit(_Queued(record, deadline))
        metadata = await slot.ack
        return metadata.partition, metadata.offset + slot.relative_offset

    async def _hand_over(self, queued: list[_Queued]) -> list[_Slot]:
        slots: dict[int, _Slot] = {}
        groups: dict[tuple[str, int], list[int]] = {}
        partitions: dict[str, list[int]] = {}
        now = asyncio.get_running_loop().time()
        for index, item in enumerate(queued):
            record = item.record
            if item.deadline <= now:
                late = TimeoutError(f"not handed to the producer within {self._timeout_s:g}s")
                slots[index] = _Slot(_failed(late), 0)
                continue
            if (size := _size(record)) > self._max_record_bytes:
                # Refused here, as aiokafka's own `send` does, not by the broker: batches of
                # the same partition sent right behind a refused one failed too, with
                # OutOfOrderSequenceNumber (the idempotent producer's sequence had a gap).
                too_large = MessageSizeTooLargeError(f"{size} bytes > {self._max_record_bytes}")
                slots[index] = _Slot(_failed(too_large), 0)
                continue
            if record.topic not in partitions:
                partitions[record.topic] = sorted(await self._producer.partitions_for(record.topic))
            every = partitions[record.topic]
            partition = self._partitioner(record.key, every, every)
            groups.setdefault((record.topic, partition), []).append(index)
        for (topic, partition), indexes in groups.items():
            batch = self._producer.create_batch()
            members: list[tuple[int, int]] = []
            for index in indexes:
                appended = _append(batch, queued[index].record)
                if appended is None:  # full: hand it over; an empty batch takes any one record
                    await self._send_batch(batch, topic, partition, members, queued, slots)
                    batch, members = self._producer.create_batch(), []
                    appended = _append(batch, queued[index].record)
                members.append((index, appended.offset))
            await self._send_batch(batch, topic, partition, members, queued, slots)
        return [slots[index] for index in range(len(queued))]

    async def _send_batch(
        self,
        batch: Any,
        topic: str,
        partition: int,
        members: list[tuple[int, int]],
        queued: list[_Queued],
        slots: dict[int, _Slot],
    ) -> None:
        started = time.perf_counter()
        try:
            sent = await self._producer.send_batch(batch, topic, partition=partition)
        except KafkaError as exc:  # this batch's members fail; the other batches go on
            ack = _failed(exc)
        else:
            sent.add_done_callback(
                lambda _: KAFKA_ACK_SECONDS.observe(time.perf_counter() - started)
            )
            # Members are in arrival order: the first one's deadline is the earliest.
            ack = with_deadline(sent, queued[members[0][0]].deadline)
        for index, relative_offset in members:
            slots[index] = _Slot(ack, relative_offset)


def _size(record: Record) -> int:
    """The record's size in a batch of its own, as aiokafka's `send` estimates it."""
    return int(
        DefaultRecordBatchBuilder.estimate_size_in_bytes(record.key, record.value, record.headers)
    )


def _append(batch: Any, record: Record) -> Any:
    """The record's metadata in `batch` (its `offset` is relative), or None if it is full."""
    return batch.append(key=record.key, value=record.value, timestamp=None, headers=record.headers)


def _failed(exc: BaseException) -> asyncio.Future[RecordMetadata]:
    failed: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
    failed.set_exception(exc)
    return failed


def with_deadline(
    sent: asyncio.Future[RecordMetadata], deadline: float
) -> asyncio.Future[RecordMetadata]:
    """A future with `sent`'s outcome, or `TimeoutError` at loop time `deadline`; one timer."""
    loop = asyncio.get_running_loop()
    ack: asyncio.Future[RecordMetadata] = loop.create_future()

    def expire() -> None:
        if not ack.done():
            ack.set_exception(TimeoutError("no ack by the deadline"))

    timer = loop.call_at(deadline, expire)

    def settle(done: asyncio.Future[RecordMetadata]) -> None:
        timer.cancel()
        if ack.done():
            return
        if done.cancelled():
            ack.cancel()
        elif (exc := done.exception()) is not None:
            ack.set_exception(exc)
        else:
            ack.set_result(done.result())

    sent.add_done_callback(settle)
    return ack
