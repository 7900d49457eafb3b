"""A flush that gives up (ClickHouse's circuit open at a stop) stops the projector's
writes: no later batch may land first."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from projections.clickhouse import ClickHouse
from projections.projector import GaveUp, Projector
from projections.tables import for_topic
from tributary.settings import Settings

pytestmark = pytest.mark.integration


class FailingInserts:
    """The real chDB client; inserts raise while `fail` is set (fault injection)."""

    def __init__(self, ch: ClickHouse) -> None:
        self.ch = ch
        self.database = ch.database
        self.fail = True
        self.inserted = 0

    def insert(self, *args: Any, **kwargs: Any) -> None:
        if self.fail:
            raise ConnectionError("ClickHouse is down")
        self.ch.insert(*args, **kwargs)
        self.inserted += 1


def test_after_a_failed_flush_nothing_else_is_inserted(
    chdb: tuple[Settings, ClickHouse],
) -> None:
    settings, ch = chdb
    settings = settings.model_copy(update={"breaker_failures": 1, "breaker_open_s": 30.0})
    failing = FailingInserts(ch)
    topic = for_topic("events.ingest").topic.physical(settings.namespace)
    row = ("e", "u", "t", "s", None, "{}", topic, 0)

    async def scenario() -> None:
        projector = Projector(settings, failing)  # type: ignore[arg-type]
        projector.batcher.add(topic, 0, 0, (*row, 0))
        await projector._flush_behind()  # rows of offset 0: the insert fails, is parked
        for _ in range(500):
            if projector.parked:
                break
            await asyncio.sleep(0.01)
        assert projector.parked
        projector._stopping = True  # a stop while parked gives the insert up
        with pytest.raises(GaveUp):
            await projector._flushed()
        failing.fail = False  # ClickHouse is back, but offset 0 is only in Kafka now
        projector.batcher.add(topic, 0, 1, (*row, 1))
        with pytest.raises(RuntimeError, match="earlier insert gave up"):
            await projector.flush()  # offset 1 would land past the lost offset 0
        await projector.consumer.stop()

    asyncio.run(scenario())
    assert failing.inserted == 0
