"""`tributary replay`: rebuild a table from its topic and swap it in under live readers."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.demo import query
from cli.main import cli
from infra.local import kafka, stack
from schemas.topics import INGEST
from tests.conftest import make_settings
from tests.integration.kafka_helpers import produce_events
from tributary import settings as settings_module
from tributary.settings import Settings

pytestmark = pytest.mark.integration

PROJECTOR = next(a for a in stack.APPS if a.name == "projector")
N = 20_000


def fingerprint(settings: Settings) -> list:
    db = settings.clickhouse_database
    return query(
        settings,
        f"""
        SELECT count(), uniqExact(_partition, _offset),
               sum(cityHash64(event_id, user_id, type, source, time, data,
                              _topic, _partition, _offset))
        FROM {db}.events_ingest""",
    )


def wait_count(settings: Settings, expected: int, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while fingerprint(settings)[0][0] < expected:
        assert time.monotonic() < deadline, "projector too slow"
        time.sleep(0.1)


def test_replay_equals_live_table_and_swap_is_never_empty(
    services: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(chdb_dir=tmp_path / "chdb", projector_batch_rows=5000)
    kafka.ensure_topics(settings)
    topic = INGEST.physical(settings.namespace)
    asyncio.run(produce_events(settings.kafka_bootstrap, topic, N, users=20, run="replay"))
    proc = stack.managed(settings, PROJECTOR)
    try:
        stack.start_app(settings, PROJECTOR)
        wait_count(settings, N)
        live = fingerprint(settings)
        db = settings.clickhouse_database
        first_insert = query(settings, f"SELECT min(_inserted) FROM {db}.events_ingest")[0][0]

        seen: list[int] = []
        stop = threading.Event()

        def reader() -> None:
            while not stop.is_set():
                seen.append(query(settings, f"SELECT count() FROM {db}.events_ingest")[0][0])

        thread = threading.Thread(target=reader)
        thread.start()
        for key, value in stack.settings_env(settings).items():
            monkeypatch.setenv(key, value)
        settings_module.get_settings.cache_clear()
        try:
            result = CliRunner().invoke(cli, ["replay", "events.ingest", "--into", "events_ingest"])
        finally:
            stop.set()
            thread.join()
            settings_module.get_settings.cache_clear()
        assert result.exit_code == 0, result.output
        assert f"{N} rows from {N} records" in result.output

        assert len(seen) > 3
        assert set(seen) == {N}, "a reader saw a partial or empty table"
        assert fingerprint(settings) == live
        rollup = f"SELECT sum(events) FROM {db}.events_per_user_minute"
        assert query(settings, rollup) == [[N]], "the rollup was not rebuilt with its source"
        rebuilt = query(settings, f"SELECT min(_inserted) FROM {db}.events_ingest")[0][0]
        assert rebuilt > first_insert, "the table was not swapped"
        # Analyst queries cannot list tables (system.tables is outside the database): ask
        # for the rebuild table by name.
        replay_id = re.search(r"replay (\w+):", result.output).group(1)  # type: ignore[union-attr]
        for table in ("events_ingest", "events_per_user_minute"):
            with pytest.raises(RuntimeError, match="UNKNOWN_TABLE"):
                query(settings, f"SELECT count() FROM {db}.{table}__rebuild_{replay_id}")

        # The live projection continues into the swapped-in table, exactly once.
        asyncio.run(produce_events(settings.kafka_bootstrap, topic, 1000, users=20, run="after"))
        wait_count(settings, N + 1000)
        time.sleep(1)
        assert fingerprint(settings)[0][:2] == [N + 1000, N + 1000]
        assert query(settings, rollup) == [[N + 1000]], "the view stopped following the table"

        # A partial replay (from offset 1000 of each partition) differs from the live table,
        # so its rollup must be the rebuilt one, not the old one.
        partial = N + 1000 - 1000 * settings.partitions
        for key, value in stack.settings_env(settings).items():
            monkeypatch.setenv(key, value)
        settings_module.get_settings.cache_clear()
        args = ["replay", "events.ingest", "--into", "events_ingest", "--from", "1000"]
        result = CliRunner().invoke(cli, args)
        settings_module.get_settings.cache_clear()
        assert result.exit_code == 0, result.output
        assert fingerprint(settings)[0][0] == partial
        assert query(settings, rollup) == [[partial]]
    finally:
        proc.stop(timeout_s=20)


def test_replay_refuses_a_table_the_topic_does_not_feed() -> None:
    result = CliRunner().invoke(cli, ["replay", "events.ingest", "--into", "events_counted"])
    assert result.exit_code == 1
    assert "projects into events_ingest" in result.output
