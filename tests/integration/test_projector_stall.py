"""A projector whose inserts hang is reported stalled, and recovers when they resume."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from infra.local import kafka
from projections.clickhouse import ClickHouse, connect
from projections.metrics import STALLED
from projections.migrations import migrate
from projections.projector import Projector
from schemas.topics import INGEST
from tests.conftest import make_settings
from tests.integration.kafka_helpers import produce_events
from tributary.settings import Settings

pytestmark = pytest.mark.integration


class HeldInserts:
    """The real chDB client, with inserts held until `release` is set (fault injection)."""

    def __init__(self, ch: ClickHouse) -> None:
        self.ch = ch
        self.database = ch.database
        self.release = threading.Event()

    def insert(self, *args: Any, **kwargs: Any) -> None:
        self.release.wait(60)
        self.ch.insert(*args, **kwargs)

    def query(self, *args: Any, **kwargs: Any) -> Any:
        return self.ch.query(*args, **kwargs)


def test_hung_inserts_are_reported_then_recover(services: Settings, tmp_path: Path) -> None:
    settings = make_settings(
        chdb_dir=tmp_path / "chdb",
        stall_after_s=1.0,
        projector_batch_rows=500,
        projector_batch_ms=100,
    )
    kafka.ensure_topics(settings)
    asyncio.run(
        produce_events(
            settings.kafka_bootstrap,
            INGEST.physical(settings.namespace),
            3000,
            users=30,
            run="stall",
        )
    )
    ch = connect(settings)
    migrate(ch)
    held = HeldInserts(ch)

    async def scenario() -> tuple[list[str], float, list[str], int]:
        projector = Projector(settings, held)  # type: ignore[arg-type]
        stop = asyncio.Event()
        task = asyncio.create_task(projector.run(stop))
        try:
            for _ in range(100):
                await asyncio.sleep(0.2)
                if projector.stalled:
                    break
            reported, gauge = list(projector.stalled), STALLED._value.get()
            held.release.set()
            for _ in range(150):
                await asyncio.sleep(0.2)
                _, rows = ch.query(f"SELECT count() FROM {ch.database}.events_ingest")
                if rows[0][0] >= 3000 and not projector.stalled:
                    break
            return reported, gauge, list(projector.stalled), rows[0][0]
        finally:
            held.release.set()
            stop.set()
            await task

    reported, gauge, after, count = asyncio.run(scenario())
    ch.close()
    assert reported, "hung inserts were never reported"
    assert all(p.startswith(INGEST.physical(settings.namespace)) for p in reported)
    assert gauge == len(reported)
    assert after == []
    assert count == 3000
