"""Diagnosis: what a consumer reads as a group's committed offset around a transaction.

Kafka stores a transactional offset commit (`send_offsets_to_transaction`) as pending
until the transaction's markers are written. A consumer can ask for stable offsets only
with OffsetFetch v7+ (`require_stable`, KIP-447); aiokafka 0.14 speaks v0-v3, so it is
answered with the last *materialized* offset. A consumer that takes over a partition
while the previous owner's transaction is pending may therefore start before that commit
and process its inputs again: one candidate cause of the duplicates of a graceful Faust
handover (README "Known problems"), where Faust does fence the previous owner first.

Against a running broker (`tributary up`):
    .venv/bin/python -m bench.pending_offsets
"""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tributary.settings import Settings


async def main(bootstrap: str) -> None:
    topic = f"pending-offsets-{uuid.uuid4().hex[:6]}"
    group = f"{topic}-group"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()
    tp = TopicPartition(topic, 0)

    async def committed() -> int | None:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
        await consumer.start()
        try:
            consumer.assign([tp])
            return await consumer.committed(tp)
        finally:
            await consumer.stop()

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"{topic}-tx")
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send_and_wait(topic, b"first")
            await producer.send_offsets_to_transaction({tp: 10}, group)
        print(f"right after transaction 1 (offset 10) committed: {await committed()}")
        await producer.begin_transaction()
        await producer.send_and_wait(topic, b"second")
        await producer.send_offsets_to_transaction({tp: 20}, group)
        print(f"while transaction 2 (offset 20) is open:       {await committed()}")
        await producer.commit_transaction()
        await asyncio.sleep(0.5)
        print(f"0.5 s after transaction 2 committed:            {await committed()}")
    finally:
        await producer.stop()


if __name__ == "__main__":
    asyncio.run(main(Settings().kafka_bootstrap))
