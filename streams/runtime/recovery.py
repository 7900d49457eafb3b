"""Taking over a partition: its tables from their changelogs, and where its input goes on.

The transactional loop calls this after the partition's producer has started: its
InitProducerId fenced the previous owner, and the broker completed (committed or aborted)
any transaction that owner left open. So the changelogs, read with read_committed, hold
exactly what the previous owner committed, including the position table: the next input
offset, written in the same transactions as the state. The consumer group's committed
offset (also sent in each transaction, for lag monitoring and tools) must not be ahead of
that position: if it is, the changelog read missed something, and it is read again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.runtime import state
from tributary.kafka_clients import read_partitions

log = structlog.get_logger(__name__)

POSITION = "next-offset"  # the position table's one key


async def read_tables(
    bootstrap: str,
    backend: state.Backend,
    partition: int,
    changelogs: dict[str, str],
    going: Callable[[], None],
) -> state.Tables:
    """The partition's tables (name → changelog topic) as their changelogs hold them,
    committed records only. `going` is called per batch read (a long restore is alive)."""
    restored = backend.open(partition, tuple(changelogs))
    where = {TopicPartition(topic, partition): name for name, topic in changelogs.items()}
    read = 0
    async for tp, records in read_partitions(bootstrap, list(where)):
        going()
        decoded = (state.decode(record.key, record.value) for record in records)
        restored[where[tp]].restore(d for d in decoded if d is not None)
        read += len(records)
    log.info("changelogs read", partition=partition, records=read)
    return restored


async def restore_to(
    consumer: AIOKafkaConsumer,
    tp: TopicPartition,
    read: Callable[[int], Awaitable[state.Tables]],
    position_table: str,
    attempts: int = 20,
) -> tuple[state.Tables, int]:
    """The partition's tables (`read`) and the input position they belong to."""
    committed = await consumer.committed(tp)
    for attempt in range(1, attempts + 1):
        tables = await read(tp.partition)
        position = tables[position_table].get(POSITION)
        if position is not None and (committed is None or position >= committed):
            return tables, int(position)
        if position is None and committed is None:
            return tables, (await consumer.beginning_offsets([tp]))[tp]
        log.warning(
            "changelog behind the committed offset; reading it again",
            partition=tp.partition,
            position=position,
            committed=committed,
            attempt=attempt,
        )
        await asyncio.sleep(0.5)
    raise RuntimeError(f"the changelog of {tp} stays behind its committed offset {committed}")
