"""`tributary.kafka_admin.read_partitions`: a reader cancelled while it connects closes its
consumer (the transactional loop cancels sibling restores when one fails)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from tributary import kafka_admin
from tributary.settings import Settings

pytestmark = pytest.mark.integration


def test_a_reader_cancelled_while_connecting_closes_its_consumer(
    services: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[AIOKafkaConsumer] = []
    created = asyncio.Event()

    class Recorded(AIOKafkaConsumer):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)
            created.set()

    monkeypatch.setattr(kafka_admin, "AIOKafkaConsumer", Recorded)

    async def read() -> None:
        tps = [TopicPartition(f"{services.namespace}.absent", 0)]
        async for _ in kafka_admin.read_partitions(services.kafka_bootstrap, tps):
            pass

    async def cancel_while_connecting() -> None:
        task = asyncio.create_task(read())
        # Woken once the reader, having made its consumer, waits for the broker in start().
        await created.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_while_connecting())

    assert len(made) == 1
    assert made[0]._closed is True  # stop() ran; before the fix, start() was outside the try
