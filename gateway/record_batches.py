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
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import RecordMetadata

from gateway.coalesce import Coalescer
from schemas.envelope import Headers


@dataclass(frozen=True)
class Record:
    topic: str
    key: bytes
    value: bytes
    headers: Headers


@dataclass(frozen=True)
class _Slot:
    """Where a record went: its batch's acknowledgement and its offset inside the batch."""

    ack: asyncio.Future[RecordMetadata]
    relative_offset: int


class RecordBatcher:
    """`send(record)` → (partition, offset) once the broker acknowledged it."""

    def __init__(self, producer: AIOKafkaProducer, timeout_s: float) -> None:
        self._producer = producer
        self._timeout_s = timeout_s
        self._partitioner = DefaultPartitioner()
        self._calls: Coalescer[Record, _Slot] = Coalescer(self._hand_over)

    async def send(self, record: Record) -> tuple[int, int]:
        """Raises `TimeoutError` after `timeout_s` without an ack, or the producer's error."""
        slot = await self._calls.submit(record)
        metadata = await slot.ack
        return metadata.partition, metadata.offset + slot.relative_offset

    async def _hand_over(self, records: list[Record]) -> list[_Slot]:
        groups: dict[tuple[str, int], list[int]] = {}
        partitions: dict[str, list[int]] = {}
        for index, record in enumerate(records):
            if record.topic not in partitions:
                partitions[record.topic] = sorted(await self._producer.partitions_for(record.topic))
            every = partitions[record.topic]
            partition = self._partitioner(record.key, every, every)
            groups.setdefault((record.topic, partition), []).append(index)
        slots: dict[int, _Slot] = {}
        for (topic, partition), indexes in groups.items():
            batch = self._producer.create_batch()
            members: list[tuple[int, int]] = []
            for index in indexes:
                record = records[index]
                appended = batch.append(
                    key=record.key, value=record.value, timestamp=None, headers=record.headers
                )
                if appended is None:  # full: hand it over; an empty batch takes any one record
                    await self._send_batch(batch, topic, partition, members, slots)
                    batch, members = self._producer.create_batch(), []
                    appended = batch.append(
                        key=record.key, value=record.value, timestamp=None, headers=record.headers
                    )
                members.append((index, appended.offset))
            await self._send_batch(batch, topic, partition, members, slots)
        return [slots[index] for index in range(len(records))]

    async def _send_batch(
        self,
        batch: object,
        topic: str,
        partition: int,
        members: list[tuple[int, int]],
        slots: dict[int, _Slot],
    ) -> None:
        sent = await self._producer.send_batch(batch, topic, partition=partition)
        ack = with_deadline(sent, self._timeout_s)
        for index, relative_offset in members:
            slots[index] = _Slot(ack, relative_offset)


def with_deadline(
    sent: asyncio.Future[RecordMetadata], timeout_s: float
) -> asyncio.Future[RecordMetadata]:
    """A future with `sent`'s outcome, or `TimeoutError` after `timeout_s`; one timer."""
    loop = asyncio.get_running_loop()
    ack: asyncio.Future[RecordMetadata] = loop.create_future()

    def expire() -> None:
        if not ack.done():
            ack.set_exception(TimeoutError(f"no ack within {timeout_s:g}s"))

    timer = loop.call_later(timeout_s, expire)

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
