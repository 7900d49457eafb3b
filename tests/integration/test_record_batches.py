"""The gateway producer's coalesced sends (`gateway/record_batches.py`) against the broker:
every answer names the record's real position, a user's records keep their order, and the
partition is the one aiokafka's own `send` picks for the same key."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer

from gateway.producer import EventProducer
from gateway.record_batches import Record, RecordBatcher
from infra.local import kafka
from schemas.api import Accepted
from schemas.envelope import CloudEvent, header_value
from schemas.topics import INGEST, MAX_RECORD_BYTES
from tests.integration.kafka_helpers import read_all
from tributary.settings import Settings

pytestmark = pytest.mark.integration

USERS = 30
PER_USER = 10


def test_concurrent_sends_land_where_they_say_in_order(services: Settings) -> None:
    settings = services.model_copy(update={"namespace": f"{services.namespace}-rb"})
    kafka.ensure_topics(settings)
    topic = INGEST.physical(settings.namespace)
    events = [
        CloudEvent(source="tests", type="test.rb", subject=f"rb-u{i % USERS}", data={"n": i})
        for i in range(USERS * PER_USER)
    ]

    async def scenario() -> tuple[list[Accepted], list[Accepted]]:
        producer = EventProducer(settings.kafka_bootstrap, 10.0)
        producer.start()
        for _ in range(200):
            if producer.connected:
                break
            await asyncio.sleep(0.05)
        assert producer.connected, "no broker within 10 s"
        try:
            coalesced = await asyncio.gather(*(producer.send(topic, e) for e in events))
            # aiokafka's own send, one record per user, through the batch endpoint's path
            plain = await producer.send_many(topic, events[:USERS])
        finally:
            await producer.stop()
        return coalesced, plain

    coalesced, plain = asyncio.run(scenario())
    records = asyncio.run(read_all(settings, topic))
    at = {(r.partition, r.offset): r for r in records}
    for event, accepted in zip(events, coalesced, strict=True):
        record = at[(accepted.partition, accepted.offset)]
        assert header_value(record.headers, "ce_id") == event.id
        assert record.key == event.subject.encode()
    by_user: dict[str, list[Accepted]] = {}
    for event, accepted in zip(events, coalesced, strict=True):
        by_user.setdefault(event.subject, []).append(accepted)
    for user_answers in by_user.values():
        assert len({a.partition for a in user_answers}) == 1
        offsets = [a.offset for a in user_answers]
        assert offsets == sorted(offsets) and len(set(offsets)) == PER_USER
    assert [a.partition for a in plain] == [a.partition for a in coalesced[:USERS]]
    assert len({a.partition for a in plain}) > 1  # the keys did spread over partitions


def test_a_record_past_its_deadline_when_its_turn_comes_is_not_sent(services: Settings) -> None:
    """With no time at all, every record is past due at its hand-over: each call fails with
    TimeoutError and nothing reaches the topic (a 503 then means: not written)."""
    settings = services.model_copy(update={"namespace": f"{services.namespace}-rb0"})
    kafka.ensure_topics(settings)
    topic = INGEST.physical(settings.namespace)

    async def scenario() -> list[BaseException | tuple[int, int]]:
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
        await producer.start()
        try:
            batcher = RecordBatcher(producer, timeout_s=0.0, max_record_bytes=MAX_RECORD_BYTES)
            record = Record(topic, b"rb0-user", b"{}", [])
            return await asyncio.gather(
                *(batcher.send(record) for _ in range(5)), return_exceptions=True
            )
        finally:
            await producer.stop()

    outcomes = asyncio.run(scenario())
    assert all(isinstance(o, TimeoutError) for o in outcomes), outcomes
    assert asyncio.run(read_all(settings, topic)) == []


def test_a_record_over_the_limit_is_413_and_breaks_nothing_else(services: Settings) -> None:
    """Refused before it reaches the broker: only that record fails (413, not a 503 to
    retry forever); records sent with it land, and the producer goes on working."""
    from gateway.errors import ApiError

    topic = INGEST.physical(services.namespace)

    def event(n: int, size: int = 0) -> CloudEvent:
        return CloudEvent(source="t", type="t.s", subject="big-u", data={"n": n, "b": "x" * size})

    async def scenario() -> list[Accepted | BaseException]:
        producer = EventProducer(services.kafka_bootstrap, 10.0, max_record_bytes=64 * 1024)
        producer.start()
        for _ in range(200):
            if producer.connected:
                break
            await asyncio.sleep(0.05)
        try:
            together = [producer.send(topic, e) for e in (event(0), event(1, 100_000), event(2))]
            answers = await asyncio.gather(*together, return_exceptions=True)
            with pytest.raises(ApiError) as batch:  # aiokafka's own check, on the batch path
                await producer.send_many(topic, [event(3), event(4, 100_000)])
            answers.append(batch.value)
            answers.append(await producer.send(topic, event(5)))  # the same partition, after
            return answers
        finally:
            await producer.stop()

    first, big, second, batch, after = asyncio.run(scenario())
    for refused in (big, batch):
        assert isinstance(refused, ApiError)
        assert (refused.status, refused.error) == (413, "record_too_large"), refused.message
    assert isinstance(first, Accepted) and isinstance(second, Accepted)
    assert isinstance(after, Accepted)
    assert first.partition == second.partition == after.partition
    assert first.offset < second.offset < after.offset
