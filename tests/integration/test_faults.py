"""The short variant of `bench.faults`: a worker SIGKILLed and Redis killed (-9) and
restarted from its AOF, each under a steady load of events over HTTP with a WebSocket
subscriber per user. Every accepted request arrives in ClickHouse once and in time, every
subscriber is pushed each of its events once, and the stack recovers within 30 s. (The
jobs' part of the load, and the other faults, are the bench's: they need dockerd and
Triton.)"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.faults import faults, run_fault, scoreboard
from tests.conftest import app_stack
from tributary.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def fault_stack(services: Settings) -> Iterator[Settings]:
    with app_stack(services, worker_session_timeout_s=6.0) as settings:
        yield settings


@pytest.mark.parametrize("fault", ["worker", "redis"])
def test_a_fault_under_load_loses_nothing(fault_stack: Settings, fault: str) -> None:
    apply, heal = faults(fault_stack)[fault]
    score = run_fault(fault_stack, fault, apply, heal, rate=20, hold_s=3)
    print(scoreboard([score]))
    assert score.accepted > 100
    assert (score.lost, score.duplicated, score.stuck) == (0, 0, 0)
    assert (score.missed, score.doubled, score.held) == (0, 0, [])
    assert " = " in score.rows_records, score.rows_records  # ClickHouse's count = the topic's
    rows, records = score.rows_records.split(" = ")
    assert rows == records == str(score.accepted), score.rows_records
    assert score.recover_s < 30
