"""Producing test events straight to a topic (no gateway), fast."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from schemas.envelope import CloudEvent
from tributary.kafka_admin import partitions
from tributary.loadgen import produce_all
from tributary.settings import Settings


async def produce_events(bootstrap: str, topic: str, count: int, users: int, run: str) -> None:
    """`count` valid CloudEvents for users `<run>-u<i>`, data {"n": per-user index}."""
    events = (
        CloudEvent(
            source=f"tests/{run}",
            type="test.event",
            subject=f"{run}-u{i % users}",
            data={"n": i // users},
        )
        for i in range(count)
    )
    await produce_all(
        bootstrap,
        topic,
        events,
        window=5000,
        acks="all",
        enable_idempotence=True,
        linger_ms=20,
        max_batch_size=256 * 1024,
    )


async def read_all(settings: Settings, topic: str) -> list[ConsumerRecord]:  # type: ignore[type-arg]
    """Every committed record now on `topic`, partition by partition."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        ids = await partitions(settings.kafka_bootstrap, topic)
        parts = [TopicPartition(topic, p) for p in ids]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        out: list[ConsumerRecord] = []  # type: ignore[type-arg]
        while [tp for tp in parts if await consumer.position(tp) < ends[tp]]:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                out.extend(records)
        return out
    finally:
        await consumer.stop()
