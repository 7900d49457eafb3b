"""A transactional loop whose takeover fails rejoins, restores and processes every input once.

aiokafka logs and swallows an exception raised in a rebalance listener; the loop must
not then sit in a stable group owning nothing, fetching records it drops. The failure is
injected into the first changelog restore; the broker and the counter agent are real, and
the tables are kept on either state backend.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from infra.local import kafka
from schemas.envelope import from_kafka
from schemas.topics import COUNTED, INGEST
from streams.events.counter import EventCounter as CounterAgent
from streams.runtime import state
from streams.runtime.transactional import TransactionalLoop
from tests.conftest import make_settings
from tests.integration.kafka_helpers import produce_events, read_until
from tributary.settings import Settings

pytestmark = pytest.mark.integration

TOTAL = 3_000
USERS = 30


class FirstRestoreFails(TransactionalLoop):
    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, CounterAgent(settings))
        self.failures_left = 1

    async def _restore(self, partition: int) -> state.Tables:
        if self.failures_left:
            self.failures_left -= 1
            raise ConnectionError("injected: changelog unreachable")
        return await super()._restore(partition)


async def run_until_counted(settings: Settings, loop: TransactionalLoop, timeout_s: float) -> list:
    """Run `loop` while its outputs are read; the records read (at least TOTAL if it works)."""
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    try:
        records = await read_until(settings, COUNTED.physical(settings.namespace), TOTAL, timeout_s)
        assert not task.done(), "the loop ended"
        return records
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


@pytest.mark.parametrize("backend", ["memory", "rocksdb"])
def test_a_failed_takeover_rejoins_and_loses_nothing(services: Settings, backend: str) -> None:
    settings = make_settings(state_backend=backend)
    kafka.ensure_topics(settings)
    asyncio.run(
        produce_events(
            settings.kafka_bootstrap, INGEST.physical(settings.namespace), TOTAL, USERS, "loop"
        )
    )
    loop = FirstRestoreFails(settings)

    records = asyncio.run(run_until_counted(settings, loop, timeout_s=90))

    assert loop.failures_left == 0  # the injected failure did happen
    outputs = [from_kafka(r.value, r.headers) for r in records]
    assert len(outputs) == TOTAL
    assert len({o.id for o in outputs}) == TOTAL
    by_user: dict[str | None, list[tuple[int, int]]] = {}
    for o in outputs:
        by_user.setdefault(o.subject, []).append((o.data["seq"], o.data["data"]["n"]))
    assert Counter(len(s) for s in by_user.values()) == Counter({TOTAL // USERS: USERS})
    for user, seqs in by_user.items():
        assert seqs == [(i + 1, i) for i in range(len(seqs))], f"{user}: order or seq broken"
