"""Kafka clients are stopped when their start fails or is cancelled half-way.

A start that got past the bootstrap holds broker connections and a metadata task; a
client left like that is found only as "Unclosed AIOKafka…" at exit, or, in a loop that
retries its start, as one leak per try. Each test makes the start fail or hang after a
real bootstrap against the real broker, then checks that `stop()` ran.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaConnectionError

from gateway import producer as gateway_producer
from infra.local import kafka
from streams.events.counter import EventCounter as CounterAgent
from streams.runtime import transactional
from tests.conftest import make_settings
from tributary import kafka_clients
from tributary.settings import Settings

pytestmark = pytest.mark.integration


class Made:
    """Records the clients a patched class makes; `made` is set once there is one."""

    def __init__(self) -> None:
        self.clients: list[Any] = []
        self.made = asyncio.Event()
        self.failures = 0  # starts that failed_once made fail

    def add(self, client: Any) -> None:
        self.clients.append(client)
        self.made.set()

    def all_closed(self) -> bool:
        return all(c._closed for c in self.clients)


def hanging(base: type, made: Made) -> type:
    """`base` whose start bootstraps for real, then never returns (a slow group join)."""

    class Hanging(base):  # type: ignore[misc, valid-type]
        async def start(self) -> None:
            made.add(self)
            await super().start()
            await asyncio.Event().wait()

    return Hanging


def failing_once(base: type, made: Made) -> type:
    """`base` whose first instance's start bootstraps for real, then raises."""

    class FailingOnce(base):  # type: ignore[misc, valid-type]
        async def start(self) -> None:
            made.add(self)
            first = len(made.clients) == 1  # decided now: several may start at once
            await super().start()
            if first:
                made.failures += 1
                raise KafkaConnectionError("injected: failed after the bootstrap")

    return FailingOnce


def recorded(base: type, made: Made) -> type:
    """`base`, each instance recorded when made."""

    class Recorded(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.add(self)

    return Recorded


def loop_settings(
    monkeypatch: pytest.MonkeyPatch, client: str, wrap: Callable[[type, Made], type]
) -> tuple[Settings, Made]:
    """A fresh namespace with its topics, and the transactional loop's `client` class
    (`AIOKafkaConsumer` or `AIOKafkaProducer`, made by `tributary.kafka_clients`) replaced by
    `wrap(it, made)`."""
    settings = make_settings()
    kafka.ensure_topics(settings)
    made = Made()
    monkeypatch.setattr(kafka_clients, client, wrap(getattr(kafka_clients, client), made))
    return settings, made


async def cancel_once_made(made: Made, task: asyncio.Task[Any]) -> None:
    await made.made.wait()
    await asyncio.sleep(0.5)  # into the bootstrap, or past it
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def run_until(loop: transactional.TransactionalLoop, done: Callable[[], bool]) -> None:
    """Run `loop` until `done()`, then stop it."""
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    try:
        async with asyncio.timeout(60):
            while not done():
                assert not task.done(), "the loop ended"
                await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def test_a_reader_cancelled_while_connecting_closes_its_consumer(
    services: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = Made()
    monkeypatch.setattr(kafka_clients, "AIOKafkaConsumer", hanging(AIOKafkaConsumer, made))

    async def read() -> None:
        tps = [TopicPartition(f"{services.namespace}.absent", 0)]
        async for _ in kafka_clients.read_partitions(services.kafka_bootstrap, tps):
            pass

    async def main() -> None:
        await cancel_once_made(made, asyncio.create_task(read()))

    asyncio.run(main())

    assert len(made.clients) == 1
    assert made.all_closed()  # before the fix start() was outside the try


def test_started_stops_a_client_whose_start_fails(services: Settings) -> None:
    made = Made()

    async def main() -> None:
        producer = failing_once(AIOKafkaProducer, made)(bootstrap_servers=services.kafka_bootstrap)
        with pytest.raises(KafkaConnectionError, match="injected"):
            async with kafka_clients.started(producer):
                pytest.fail("a failed start must not enter the block")

    asyncio.run(main())

    assert made.failures == 1
    assert len(made.clients) == 1
    assert made.all_closed()


def test_the_gateway_producer_is_closed_when_shut_down_while_connecting(
    services: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = Made()
    monkeypatch.setattr(kafka_clients, "AIOKafkaProducer", hanging(AIOKafkaProducer, made))

    async def main() -> None:
        producer = gateway_producer.EventProducer(services.kafka_bootstrap, timeout_s=5)
        producer.start()
        await made.made.wait()
        await asyncio.sleep(0.5)
        await producer.stop()  # the gateway's shutdown, while the start still hangs
        assert not producer.connected

    asyncio.run(main())

    assert len(made.clients) == 1
    assert made.all_closed()  # before the fix only Kafka and OS errors stopped it


def test_a_transactional_loop_retrying_its_start_leaves_no_consumer_open(
    services: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, made = loop_settings(monkeypatch, "AIOKafkaConsumer", failing_once)
    loop = transactional.TransactionalLoop(settings, CounterAgent(settings))

    # Joined with its second consumer (the first may join too before it fails). The
    # changelog readers of its restores are consumers too, without a group.
    def members() -> list[Any]:
        return [c for c in made.clients if c._group_id is not None]

    asyncio.run(run_until(loop, lambda: len(members()) == 2 and loop.ready))

    assert made.failures == 1 and len(members()) == 2  # failed, and the loop retried
    assert made.all_closed()  # before the fix the first was never stopped


def test_a_takeover_whose_producer_fails_to_start_leaves_no_producer_open(
    services: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, made = loop_settings(monkeypatch, "AIOKafkaProducer", failing_once)
    loop = transactional.TransactionalLoop(settings, CounterAgent(settings))

    # The first takeover fails (the others of its starts are cancelled); the loop rejoins.
    asyncio.run(run_until(loop, lambda: len(made.clients) > 1 and loop.ready))

    assert made.failures == 1
    assert made.all_closed()  # before the fix the producer whose start failed stayed open


def test_a_takeover_that_finishes_while_the_loop_stops_leaves_no_producer_open(
    services: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The consumer's stop() lets a rebalance under way finish: a takeover that waited for
    its turn then makes a transactional producer per partition, after the loop released
    what it owned. Before the fix those producers stayed open (found as "Unclosed
    AIOKafkaProducer" in a worker's log after a SIGTERM during a rebalance)."""
    settings, made = loop_settings(monkeypatch, "AIOKafkaProducer", recorded)

    class GatedTakeover(transactional.TransactionalLoop):
        def __init__(self) -> None:
            super().__init__(settings, CounterAgent(settings))
            self.waiting = asyncio.Event()
            self.gate = asyncio.Event()

        async def assigned_to(self, consumer: AIOKafkaConsumer, partitions: list[int]) -> None:
            self.waiting.set()
            await self.gate.wait()
            await super().assigned_to(consumer, partitions)

    loop = GatedTakeover()

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(loop.run(stop))
        async with asyncio.timeout(60):
            await loop.waiting.wait()  # the first takeover waits at the gate
        stop.set()
        await asyncio.sleep(1)  # the loop has left its fetch loop and is in consumer.stop()
        assert not task.done()  # stop() waits for the takeover
        loop.gate.set()
        await asyncio.wait_for(task, 60)

    asyncio.run(main())

    assert made.clients  # the takeover ran after the release, and made producers
    assert made.all_closed()
    assert not loop.ready
