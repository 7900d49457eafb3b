"""The consumer every Redis projector uses: its own group, manual commits, committed reads only."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer

from schemas.groups import ConsumerGroup
from tributary.settings import Settings


def redis_projector_consumer(settings: Settings, group: ConsumerGroup) -> AIOKafkaConsumer:
    """`group`'s topics; offsets are committed by the caller after Redis has the batch
    (at-least-once)."""
    return AIOKafkaConsumer(
        *(topic.physical(settings.namespace) for topic in group.topics),
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=group.physical(settings.namespace),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
