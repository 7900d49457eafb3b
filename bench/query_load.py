"""Ingestion under an analyst query: last 202 → last row in ClickHouse, idle and loaded.

Rounds alternate: 200 new events from 10 users over HTTP while nothing else runs, then
200 more while `SELECT count() FROM numbers(100000000000)` runs at its limits (the
`query_max_execution_s` the projector was started with). Each round times the last 202
to the 200th row the projector counted (`tributary_projector_rows_total` from its
/metrics, not a query, which would queue behind the heavy one). Target: the loaded
median at most twice the idle median.

It starts a stack of its own (one broker, Redis, projector with embedded chDB, worker,
gateway; query limit 4 s) under `.tributary-bench-query/`:
    .venv/bin/python -m bench.query_load --rounds 5
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import threading
import time
import uuid
from pathlib import Path

import httpx
import typer

from cli.demo import send_events
from infra.local import stack
from infra.local.process import free_port
from tributary import admin
from tributary.settings import Settings

HEAVY = "SELECT count() FROM numbers(100000000000)"
ROOT = Path(__file__).resolve().parents[1] / ".tributary-bench-query"


def rows_landed(settings: Settings, table: str = "events_counted") -> float:
    """The projector's count of rows inserted into `table` (its /metrics, no query)."""
    text = httpx.get(f"{settings.projector_url}/metrics").text
    prefix = f'tributary_projector_rows_total{{table="{table}"}} '
    return next(
        (float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix)), 0.0
    )


def last_202_to_last_row(settings: Settings, events: int = 200) -> float:
    """Seconds from the last 202 of `events` new events to their last row in ClickHouse."""
    base = rows_landed(settings)
    asyncio.run(send_events(settings, uuid.uuid4().hex[:8], events=events, users=10))
    answered = time.monotonic()
    deadline = answered + 60
    while rows_landed(settings) < base + events:
        if time.monotonic() > deadline:
            raise RuntimeError("events did not reach ClickHouse within 60 s")
        time.sleep(0.02)
    return time.monotonic() - answered


def heavy_query(settings: Settings, outcome: dict[str, float | int]) -> None:
    started = time.monotonic()
    response = httpx.post(
        f"{settings.projector_url}/query",
        json={"sql": HEAVY},
        headers=admin.client_headers(settings),
        timeout=settings.query_max_execution_s + 30,
    )
    outcome["status"] = response.status_code
    outcome["seconds"] = time.monotonic() - started


def settings_for() -> Settings:
    base = free_port()
    return Settings(
        data_dir=ROOT,
        namespace=f"bench-query-{uuid.uuid4().hex[:6]}",
        kafka_port=base,
        kafka_controller_port=base + 1,
        redis_port=free_port(),
        gateway_port=free_port(),
        projector_port=free_port(),
        worker_web_port=free_port(),
        dashboard_port=free_port(),
        rate_limits="100000/s,10000000/m,100000000/h",
        query_max_execution_s=4.0,
        projector_batch_ms=200,
        log_level="WARNING",
    )


def main(rounds: int = 5) -> None:
    settings = settings_for()
    shutil.rmtree(ROOT, ignore_errors=True)
    try:
        stack.up(settings, echo=lambda _: None, jobs=False)
        measure(settings, rounds)
    finally:
        stack.down(settings, echo=lambda _: None)


def measure(settings: Settings, rounds: int) -> None:
    last_202_to_last_row(settings)  # warm every hop
    idle: list[float] = []
    loaded: list[float] = []
    cut: list[float] = []
    for _ in range(rounds):
        idle.append(last_202_to_last_row(settings))
        outcome: dict[str, float | int] = {}
        runner = threading.Thread(target=heavy_query, args=(settings, outcome))
        runner.start()
        time.sleep(0.5)  # the query is running
        loaded.append(last_202_to_last_row(settings))
        under = runner.is_alive()
        runner.join()
        if not under:
            raise RuntimeError("the query ended before the events landed: raise its limit")
        if outcome["status"] != 422:
            raise RuntimeError(f"the heavy query answered {outcome['status']}, not 422")
        cut.append(float(outcome["seconds"]))
    ratio = statistics.median(loaded) / statistics.median(idle)
    print("| | median (s) | rounds (s) |\n|---|---|---|")
    for name, values in (("idle", idle), ("under the query", loaded)):
        shown = ", ".join(f"{v:.3f}" for v in values)
        print(f"| {name} | {statistics.median(values):.3f} | {shown} |")
    print(f"| ratio | {ratio:.2f} (target ≤ 2) | |")
    print(
        f"query cut after {min(cut):.2f} to {max(cut):.2f} s "
        f"(limit {settings.query_max_execution_s} s)"
    )


if __name__ == "__main__":
    typer.run(main)
