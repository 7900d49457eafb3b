"""ClickHouse failing under the projector, on real Kafka and chDB: the circuit breaker opens
after `breaker_failures` failed inserts, nothing is called while it is open, the partitions
are paused (the consumer stays in its group), a probe closes it, and every record lands
once. A rebalance while the insert is parked gives it up; the next owner lands every record
once. Inserts fail in front of chDB's client (fault injection); everything else is real."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.local import kafka
from projections.clickhouse import ClickHouse, connect
from projections.migrations import migrate
from projections.projector import GaveUp, Projector
from schemas.topics import INGEST
from tests.conftest import make_settings
from tests.integration.kafka_helpers import produce_events
from tributary.breakers import CIRCUIT_OPEN, CLICKHOUSE
from tributary.settings import Settings

pytestmark = pytest.mark.integration

TOTAL = 3000
FAILURES = 3
OPEN_S = 2.0


class FailingInserts:
    """The real chDB client; inserts raise while `fail` is set, and are counted."""

    def __init__(self, ch: ClickHouse) -> None:
        self.ch = ch
        self.database = ch.database
        self.backend = ch.backend
        self.fail = True
        self.calls = 0

    def insert(self, *args: Any, **kwargs: Any) -> None:
        self.calls += 1
        if self.fail:
            raise ConnectionError("ClickHouse is down")
        self.ch.insert(*args, **kwargs)

    def query(self, *args: Any, **kwargs: Any) -> Any:
        return self.ch.query(*args, **kwargs)


@pytest.fixture
def broken(services: Settings, tmp_path: Path) -> Iterator[tuple[Settings, FailingInserts]]:
    settings = make_settings(
        chdb_dir=tmp_path / "chdb",
        breaker_failures=FAILURES,
        breaker_open_s=OPEN_S,
        projector_batch_ms=100,
    )
    kafka.ensure_topics(settings)
    ch = connect(settings)
    migrate(ch)
    try:
        yield settings, FailingInserts(ch)
    finally:
        ch.close()


def rows(ch: ClickHouse) -> tuple[int, int]:
    _, found = ch.query(
        f"SELECT count(), uniqExact(_partition, _offset) FROM {ch.database}.events_ingest"
    )
    return int(found[0][0]), int(found[0][1])


async def until(check: Any, what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def parked_projector(
    settings: Settings, failing: FailingInserts, run: str
) -> tuple[Projector, asyncio.Event, asyncio.Task[None]]:
    """A projector on the failing client, once its circuit has opened under `TOTAL`
    records: it, its stop event and its running task."""
    projector = Projector(settings, failing)  # type: ignore[arg-type]
    stop = asyncio.Event()
    running = asyncio.create_task(projector.run(stop))
    topic = INGEST.physical(settings.namespace)
    await produce_events(settings.kafka_bootstrap, topic, TOTAL, 10, run)
    await until(lambda: projector.parked, "the circuit never opened")
    return projector, stop, running


def test_the_circuit_opens_parks_the_insert_and_a_probe_closes_it(
    broken: tuple[Settings, FailingInserts],
) -> None:
    settings, failing = broken
    gauge = CIRCUIT_OPEN.labels(dependency=CLICKHOUSE)

    async def scenario() -> None:
        projector, stop, running = await parked_projector(settings, failing, "cb")
        assert failing.calls == FAILURES and gauge._value.get() == 1
        assert projector.breakers.open() == [CLICKHOUSE]
        # Parked: every assigned partition paused, and nothing called until the probe.
        await until(lambda: projector.consumer.paused(), "no partition paused", 5)
        assert projector.consumer.paused() == projector.consumer.assignment()
        await asyncio.sleep(OPEN_S * 0.7)
        assert failing.calls == FAILURES and not running.done()
        failing.fail = False  # ClickHouse is back: the probe closes the circuit
        await until(lambda: rows(failing.ch)[0] >= TOTAL, "the rows never landed", 60)
        await until(lambda: not projector.parked, "the circuit never closed", 5)
        assert gauge._value.get() == 0 and projector.consumer.paused() == set()
        stop.set()
        await running

    asyncio.run(scenario())
    assert rows(failing.ch) == (TOTAL, TOTAL)  # every record once


def test_a_rebalance_while_parked_gives_the_insert_up_and_the_next_owner_lands_all(
    broken: tuple[Settings, FailingInserts],
) -> None:
    settings, failing = broken

    async def scenario() -> None:
        _, _, running = await parked_projector(settings, failing, "rb")
        # A second projector, with a working ClickHouse, joins the group: the rebalance
        # makes the first give its parked insert up and exit.
        second = Projector(settings, failing.ch)
        other_stop = asyncio.Event()
        other = asyncio.create_task(second.run(other_stop))
        with pytest.raises(GaveUp):
            await asyncio.wait_for(running, 60)
        await until(lambda: rows(failing.ch)[0] >= TOTAL, "the rows never landed", 90)
        await asyncio.sleep(1)  # a late duplicate would land now
        other_stop.set()
        await other

    asyncio.run(scenario())
    assert rows(failing.ch) == (TOTAL, TOTAL)  # the first's inserts all failed: all once
