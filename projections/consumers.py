"""The consumer every Redis projector uses: its own group, manual commits, committed reads only."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer

from schemas.groups import ConsumerGroup
from tributary import kafka_clients
from tributary.settings import Settings


def redis_projector_consumer(settings: Settings, group: ConsumerGroup) -> AIOKafkaConsumer:
    """`group`'s topics; offsets are committed by the caller after Redis has the batch
    (at-least-once)."""
    return kafka_clients.group_consumer(
        settings.kafka_bootstrap,
        group.physical(settings.namespace),
        *(topic.physical(settings.namespace) for topic in group.topics),
    )
