"""Producing test events straight to a topic (no gateway), fast."""

from __future__ import annotations

from aiokafka.structs import ConsumerRecord

from schemas.envelope import CloudEvent
from tributary.kafka_admin import read_to_end
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
    return await read_to_end(settings.kafka_bootstrap, topic)
