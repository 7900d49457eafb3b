"""Tributary as a cluster beside one of everything, in one run, on the same cores.

1. End to end, HTTP → ClickHouse, on one broker (one gateway, one worker) and then on three
   brokers (RF 3, min ISR 2; two gateways behind haproxy, two workers): the same paced load
   (`USERS` users, one event each `1 / PER_USER_HZ` s, for `--seconds`), and the p50/p99 of
   each event's time from acceptance (the gateway's `time`) to its row (`_inserted`, set by
   ClickHouse at the insert); both clocks are this machine's. A known answer to check it
   against: the projector batches for `projector_batch_ms`, so no p50 can be below a few
   tens of ms, and none above that plus the agents' commit interval unless something waits.
2. Through haproxy, `wrk` on `POST /v1/events` with both gateways in rotation, then with
   one (the other stopped; haproxy's checks take it out): events/s and the ratio.
3. What the cluster costs here: start-up time, and the resident memory of every process.

Needs `wrk` (`apt-get install wrk`) and free ports; data under `.tributary-bench-cluster/`:
    .venv/bin/python -m bench.cluster [--seconds 20]
"""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from pathlib import Path

import httpx
import psutil
import typer

from bench.gateway import run_wrk
from cli.demo import api_keys, query
from infra.local import stack
from infra.local.process import free_port
from tributary.settings import Settings

ROOT = Path(__file__).resolve().parents[1] / ".tributary-bench-cluster"
USERS = 20
PER_USER_HZ = 2.0  # 40 events/s in all: a load both setups keep up with, so both get the same


def settings_for(brokers: int, gateways: int, workers: int) -> Settings:
    name = f"b{brokers}"
    base = free_port()  # node n: base + 2(n-1) and the next port (checked free at start)
    return Settings(
        data_dir=ROOT / name,
        namespace=f"bench-{name}-{uuid.uuid4().hex[:6]}",
        kafka_port=base,
        kafka_controller_port=base + 1,
        kafka_brokers=brokers,
        kafka_heap="256m" if brokers > 1 else "512m",
        redis_port=free_port(),
        gateways=gateways,
        workers=workers,
        gateway_port=free_port(),
        projector_port=free_port(),
        worker_web_port=free_port(),
        dashboard_port=free_port(),
        rate_limits="100000/s,10000000/m,100000000/h",
        projector_batch_ms=200,
        log_level="WARNING",
    )


async def paced_load(settings: Settings, seconds: float, run: str) -> int:
    """Each user posts one event every 1 / PER_USER_HZ s; returns the events accepted."""
    users = [f"{run}-u{i}" for i in range(USERS)]
    keys = await api_keys(settings, users)
    accepted = 0
    async with httpx.AsyncClient(base_url=settings.gateway_url, timeout=10) as client:

        async def user(name: str) -> None:
            nonlocal accepted
            deadline = time.monotonic() + seconds
            next_at = time.monotonic()
            while time.monotonic() < deadline:
                body = {"source": "bench", "type": "bench.e2e", "data": {}}
                response = await client.post(
                    "/v1/events", json=body, headers={"x-api-key": keys[name]}
                )
                if response.status_code == 202:
                    accepted += 1
                next_at += 1 / PER_USER_HZ
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))

        await asyncio.gather(*(user(u) for u in users))
    return accepted


def end_to_end(settings: Settings, seconds: float) -> tuple[int, float, float]:
    """(events, p50 ms, p99 ms) from acceptance to row, for one paced run."""
    run = f"e2e{uuid.uuid4().hex[:6]}"
    accepted = asyncio.run(paced_load(settings, seconds, run))
    db, where = settings.clickhouse_database, f"user_id LIKE '{run}-%'"
    deadline = time.monotonic() + 120
    while (
        query(settings, f"SELECT count() FROM {db}.events_counted WHERE {where}")[0][0] < accepted
    ):
        if time.monotonic() > deadline:
            raise RuntimeError("not every accepted event reached ClickHouse")
        time.sleep(0.5)
    [[p50, p99]] = query(
        settings,
        f"SELECT quantileExact(0.5)(ms), quantileExact(0.99)(ms) FROM (SELECT "
        f"dateDiff('millisecond', time, _inserted) AS ms FROM {db}.events_counted WHERE {where})",
    )
    return accepted, float(p50), float(p99)


def memory_mib(settings: Settings) -> dict[str, float]:
    """Resident memory of every process the stack runs (JVM brokers included), MiB."""
    run = settings.data_dir.resolve() / "run"
    found: dict[str, float] = {}
    for pid_file in sorted(run.glob("*.pid")):
        try:
            rss = psutil.Process(int(pid_file.read_text())).memory_info().rss
        except (psutil.Error, ValueError):
            continue
        found[pid_file.stem] = rss / 2**20
    return found


def main(seconds: float = typer.Option(20.0, help="Seconds of paced load per setup")) -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install wrk")
    rows: list[str] = []
    for brokers, gateways, workers in ((1, 1, 1), (3, 2, 2)):
        settings = settings_for(brokers, gateways, workers)
        started = time.monotonic()
        try:
            stack.up(settings, echo=lambda _: None, jobs=False)
            up_s = time.monotonic() - started
            end_to_end(settings, 5)  # warm every hop (JIT, caches, leaders) unmeasured
            events, p50, p99 = end_to_end(settings, seconds)
            memory = memory_mib(settings)
            rows.append(
                f"| {brokers} broker(s), {gateways} gateway(s), {workers} worker(s) | {events} "
                f"| {p50:.0f} | {p99:.0f} | {up_s:.0f} | {sum(memory.values()):.0f} |"
            )
            print(rows[-1], {k: round(v) for k, v in memory.items()})
            if gateways > 1:
                key = asyncio.run(api_keys(settings, ["wrk"]))["wrk"]
                both, _, _ = run_wrk(settings.gateway_url, key, 10, 32)
                second = next(a for a, s in stack.replicas(settings) if a.name == "gateway-2")
                stack.managed(settings, second).stop()
                time.sleep(3)  # haproxy's checks (1 s, fall 2) take it out
                one, _, _ = run_wrk(settings.gateway_url, key, 10, 32)
                print(
                    f"through haproxy: two gateways {both:.0f} events/s, one {one:.0f} "
                    f"events/s, ratio {both / one:.2f}"
                )
        finally:
            stack.down(settings, echo=lambda _: None)
    print("| setup | events | p50 ms | p99 ms | up s | RSS MiB |\n|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    typer.run(main)
