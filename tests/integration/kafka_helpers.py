"""Producing test events straight to a topic (no gateway), fast."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer

from schemas.envelope import CloudEvent, to_kafka


async def produce_events(bootstrap: str, topic: str, count: int, users: int, run: str) -> None:
    """`count` valid CloudEvents for users `<run>-u<i>`, data {"n": per-user index}."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=20,
        max_batch_size=256 * 1024,
    )
    await producer.start()
    try:
        pending = []
        for i in range(count):
            user = i % users
            event = CloudEvent(
                source=f"tests/{run}",
                type="test.event",
                subject=f"{run}-u{user}",
                data={"n": i // users},
            )
            key, value, headers = to_kafka(event)
            pending.append(await producer.send(topic, value=value, key=key, headers=headers))
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
