"""Rebuilding what Redis holds for the gateways from Kafka, the source of truth.

Redis holds two stores the projector writes and could lose (eviction, a flush, a Redis
restarted without its AOF): job and container status (`projections/status.py`) and push
history (`projections/push.py`). Both are projections of topics, written at-least-once
and idempotently (a status event overwrites in its partition's order; a push entry's
stream id is its sequence number, so one written twice is refused). So either is rebuilt
by reading its topics again from their beginning: `rewind` commits the projector group's
offsets there, and the projector, started next, projects everything again, as far back as
the topics' retention goes. The projector must be stopped meanwhile: a group with a
member refuses the commit.
"""

from __future__ import annotations

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from schemas.groups import PROJECTOR_PUSH, PROJECTOR_STATUS, ConsumerGroup
from tributary import kafka_clients
from tributary.kafka_clients import partitions, started
from tributary.settings import Settings

STORES: dict[str, ConsumerGroup] = {"status": PROJECTOR_STATUS, "push": PROJECTOR_PUSH}


class GroupActive(RuntimeError):
    """The projector group has a member: stop the projector first."""


async def rewind(settings: Settings, store: str) -> dict[TopicPartition, int]:
    """Commit `store`'s projector group at the beginning of every partition of its topics;
    the offsets committed."""
    group = STORES[store]
    bootstrap, ns = settings.kafka_bootstrap, settings.namespace
    tps = [
        TopicPartition(topic.physical(ns), p)
        for topic in group.topics
        for p in await partitions(bootstrap, topic.physical(ns))
    ]
    consumer = kafka_clients.group_consumer(bootstrap, group.physical(ns))
    async with started(consumer):
        consumer.assign(tps)
        beginnings = await consumer.beginning_offsets(tps)
        try:
            await consumer.commit(beginnings)
        except KafkaError as exc:
            raise GroupActive(
                f"{group.physical(ns)} refused the commit ({exc!r}): stop the projector first"
            ) from exc
    return dict(beginnings)
