"""The consumer every Redis projector uses: its own group, manual commits, committed reads only."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer

from tributary.settings import Settings


def redis_projector_consumer(settings: Settings, group: str, *topics: str) -> AIOKafkaConsumer:
    """Offsets are committed by the caller after Redis has the batch (at-least-once)."""
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"{settings.namespace}-{group}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
