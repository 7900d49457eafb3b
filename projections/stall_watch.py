"""The projector's stall watch: are its partitions' rows landing in ClickHouse?

It runs apart from the projector's loop, so a flush stuck on ClickHouse still gets
reported: per partition, rows landed (the consumer's position held back by rows still
batched or being inserted) against the end offset; a partition with lag that has not moved
for `stall_after_s` is stalled (readiness, a gauge, a log line). It also reports lag.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from projections.metrics import STALLED
from tributary.ops_metrics import report_lag
from tributary.progress import ProgressWatch

log = structlog.get_logger(__name__)


class StallWatch:
    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        group: str,
        stall_after_s: float,
        landed: Callable[[TopicPartition, int], int],  # rows below this offset landed
    ) -> None:
        self.consumer = consumer
        self.group = group
        self._landed = landed
        self.progress: ProgressWatch[TopicPartition] = ProgressWatch(stall_after_s)
        self.stalled: list[str] = []

    def forget(self, tp: TopicPartition) -> None:
        """A partition revoked: not ours to watch."""
        self.progress.forget(tp)

    async def run(self, stop: asyncio.Event, every_s: float = 2.0) -> None:
        """Apart from the loop it watches: a flush stuck on ClickHouse still gets reported."""
        while not stop.is_set():
            await asyncio.sleep(every_s)
            try:
                await self.observe()
            except Exception:  # a watcher that dies quietly reports "all well" forever
                log.exception("progress watch round failed; trying again")

    async def observe(self) -> None:
        now = asyncio.get_running_loop().time
        for tp in self.consumer.assignment():
            end = self.consumer.highwater(tp)
            if end is None:
                continue
            try:
                position = await asyncio.wait_for(self.consumer.position(tp), 1)
            except (TimeoutError, KafkaError, AssertionError):
                continue  # being reassigned or reset; the next round sees it
            landed = self._landed(tp, position)
            self.progress.observe(tp, landed, end, now())
            report_lag(self.group, tp.topic, tp.partition, landed, end)
        self.stalled = [f"{tp.topic}:{tp.partition}" for tp in self.progress.stalled(now())]
        STALLED.set(len(self.stalled))
        if self.stalled:
            log.warning("stalled partitions", partitions=self.stalled)
