"""Producing test events straight to a topic (no gateway), fast."""

from __future__ import annotations

import time

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord

from cli.loadgen import produce_all
from schemas.envelope import CloudEvent
from tributary.kafka_clients import read_to_end
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
        linger_ms=20,
        max_batch_size=256 * 1024,
    )


async def read_all(settings: Settings, topic: str) -> list[ConsumerRecord]:  # type: ignore[type-arg]
    """Every committed record now on `topic`, partition by partition."""
    return await read_to_end(settings.kafka_bootstrap, topic)


async def read_until(settings: Settings, topic: str, expect: int, timeout_s: float) -> list:
    """Committed records of `topic` from its beginning, until `expect` of them and 3 s more
    (a duplicate would show up then), or until `timeout_s`: whatever was read by then."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await consumer.start()
    records: list = []
    deadline = time.monotonic() + timeout_s
    quiet_until = None
    try:
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            got = [m for messages in batch.values() for m in messages]
            records += got
            if len(records) >= expect:
                # keep reading a little: a duplicate would show up now
                quiet_until = quiet_until or time.monotonic() + 3
                if time.monotonic() > quiet_until:
                    break
        return records
    finally:
        await consumer.stop()
