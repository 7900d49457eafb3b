"""The projector under SIGKILL: every record lands in ClickHouse exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from cli.demo import query
from infra.local import kafka, stack
from schemas.topics import INGEST
from tests.conftest import make_settings
from tests.integration.kafka_helpers import produce_events
from tributary.settings import Settings

pytestmark = pytest.mark.integration

TOTAL = 100_000
PROJECTOR = next(a for a in stack.APPS if a.name == "projector")


def count(settings: Settings) -> int:
    db = settings.clickhouse_database
    return int(query(settings, f"SELECT count() FROM {db}.events_ingest")[0][0])


def wait_for(settings: Settings, at_least: int, timeout_s: float = 180) -> int:
    deadline = time.monotonic() + timeout_s
    seen = 0
    while time.monotonic() < deadline:
        seen = count(settings)
        if seen >= at_least:
            return seen
        time.sleep(0.05)
    raise AssertionError(f"{seen} rows after {timeout_s}s, wanted {at_least}")


def assert_exactly_once(settings: Settings, total: int, users: int) -> None:
    """Every record once: no duplicate event, no offset gap, every user's every n."""
    db = settings.clickhouse_database
    rows = query(
        settings,
        f"""
        SELECT count(), uniqExact(event_id), uniqExact(_partition, _offset)
        FROM {db}.events_ingest""",
    )
    assert rows == [[total, total, total]]
    per_partition = query(
        settings,
        f"""
        SELECT _partition, count(), min(_offset), max(_offset)
        FROM {db}.events_ingest GROUP BY _partition ORDER BY _partition""",
    )
    for partition, n, lo, hi in per_partition:
        assert (lo, hi) == (0, n - 1), f"partition {partition} has gaps or duplicates"
    per_user = query(
        settings,
        f"""
        SELECT user_id, count(), uniqExact(JSONExtractInt(data, 'n'))
        FROM {db}.events_ingest GROUP BY user_id""",
    )
    assert len(per_user) == users
    assert all(n == unique == total // users for _, n, unique in per_user)


def test_three_sigkills_mid_run_leave_exactly_every_row(services: Settings, tmp_path: Path) -> None:
    settings = make_settings(
        chdb_dir=tmp_path / "chdb", projector_batch_rows=4000, projector_batch_ms=100
    )
    kafka.ensure_topics(settings)
    asyncio.run(
        produce_events(
            settings.kafka_bootstrap,
            INGEST.physical(settings.namespace),
            TOTAL,
            users=50,
            run="crash",
        )
    )
    proc = stack.managed(settings, PROJECTOR)
    kills = 0
    try:
        for threshold in (15_000, 40_000, 70_000):
            stack.start_app(settings, PROJECTOR)
            seen = wait_for(settings, threshold)
            if seen >= TOTAL:
                break
            proc.stop(timeout_s=0, sig=signal.SIGKILL)
            kills += 1
        stack.start_app(settings, PROJECTOR)
        wait_for(settings, TOTAL)
        time.sleep(1.0)  # anything duplicated would arrive now
        assert_exactly_once(settings, TOTAL, users=50)
    finally:
        proc.stop(timeout_s=20)
    assert kills == 3, "the projector finished before all three kills; make the run longer"


def test_a_frozen_projector_dropped_by_its_group_rejoins_and_goes_on(
    services: Settings, tmp_path: Path
) -> None:
    """SIGSTOP past the session timeout: the group drops the member, its next offset
    commit is refused. That refusal used to kill the process (CI saw it once); now the
    projector rejoins, resumes from ClickHouse and still writes every row once."""
    total, users = 30_000, 10
    settings = make_settings(
        chdb_dir=tmp_path / "chdb", projector_batch_rows=2000, projector_batch_ms=50
    )
    kafka.ensure_topics(settings)
    asyncio.run(
        produce_events(
            settings.kafka_bootstrap, INGEST.physical(settings.namespace), total, users, "frozen"
        )
    )
    proc = stack.managed(settings, PROJECTOR)
    try:
        stack.start_app(settings, PROJECTOR)
        wait_for(settings, 2_000)
        pid = proc.pid()
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        time.sleep(15)  # aiokafka's session timeout is 10 s
        os.kill(pid, signal.SIGCONT)
        wait_for(settings, total)
        time.sleep(1.0)
        assert proc.pid() == pid, "the projector died after it was resumed"
        assert_exactly_once(settings, total, users)
    finally:
        proc.stop(timeout_s=20)
