"""Faults under load, one at a time, and a scoreboard of what became of every request.

On a stack of its own (data under `.tributary-bench-faults/`, its own ports; chDB's folder
on a 512 MiB tmpfs, so that it can be filled), a mixed load (`bench/fault_load.py`: events
over HTTP, inference and container jobs, a WebSocket subscriber per user) runs while one
fault is applied, held and healed:

| fault | applied | healed |
|---|---|---|
| worker, projector, gateway, dashboard | SIGKILL | started again |
| redis | SIGKILL | started again, from its AOF |
| broker | SIGKILL (the one broker) | started again |
| leader (`--brokers 3`) | SIGKILL of the broker leading the most partitions | started again |
| rolling (`--brokers 3`) | each broker restarted in turn, the last one left down | started |
| dockerd | stopped | started |
| triton | SIGKILL | started again (the model loads) |
| triton-frozen | SIGSTOP, past the jobs' 3 s timeout | SIGCONT |
| disk-full | chDB's tmpfs filled to the last byte | the filler removed |
| clock | the worker restarted with its clock 1 h ahead (libfaketime) | left so |

Then it reconciles (`fault_load`): per fault, requests accepted, refused (503 or no
connection: the client's to retry), lost, duplicated, stuck, dead-lettered; subscribers'
missed and doubled events; the run's rows in ClickHouse against its records on the
topic; what is left held (GPU pool leases, containers on the engine,
quota and in-flight slots); and the time to recover: from the heal until everything
accepted before it has its outcome and a request is accepted again.

    .venv/bin/python -m bench.faults                          # one broker, every fault
    .venv/bin/python -m bench.faults --brokers 3 --faults leader,rolling
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import typer

from bench.fault_load import (
    all_landed,
    events_outcome,
    jobs_outcome,
    left_held,
    live_leases,
    on_engine,
    records_on_topic,
    run_load,
    subscribers,
)
from cli.demo import api_keys
from infra.local import dockerd, kafka, redis, stack, triton
from infra.local.process import free_port, wait_until
from tributary.settings import Settings

ROOT = Path(__file__).resolve().parents[1] / ".tributary-bench-faults"
TMPFS_SIZE = "512m"
LAND_WAIT_S = 180.0  # how long the reconcile waits for the outcomes of accepted requests
HELD_WAIT_S = 90.0  # and then for containers to go and slots to be given back

Fault = tuple[Callable[[], object], Callable[[], object]]  # (apply, heal)


@dataclass
class Score:
    fault: str
    accepted: int
    refused: int
    lost: int
    duplicated: int
    stuck: int
    dead_lettered: int
    missed: int  # events a subscriber was not pushed
    doubled: int  # events pushed to a subscriber more than once
    resumed: str  # subscribers that reconnected, of all
    rows_records: str  # the run's rows in ClickHouse against its records on the topic
    held: list[str]  # left held once everything had its outcome
    recover_s: float


def restart_process(settings: Settings, name: str) -> Fault:
    app = next(a for a in (*stack.APPS, stack.DASHBOARD) if a.name == name)
    proc = stack.managed(settings, app)
    return (
        lambda: proc.stop(timeout_s=0, sig=signal.SIGKILL),
        lambda: print(stack.start_app(settings, app)),
    )


def signal_group(pid: int | None, sig: int) -> None:
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)


def libfaketime() -> str:
    found = glob.glob("/usr/lib/*/faketime/libfaketime.so.1")
    if not found:
        raise RuntimeError("libfaketime is missing: apt-get install faketime (make system)")
    return found[0]


def worker_with_clock(settings: Settings, offset: str) -> None:
    """The worker SIGKILLed and started again with its clock `offset` (libfaketime)."""
    proc = stack.managed(settings, stack.WORKER)
    proc.stop(timeout_s=0, sig=signal.SIGKILL)
    env = {**stack.settings_env(settings), "LD_PRELOAD": libfaketime(), "FAKETIME": offset}
    proc.start([sys.executable, "-m", "cli", "worker"], env=env)
    url = stack.WORKER.ready_url(settings)
    wait_until(lambda: stack.url_ok(url), "worker (clock jumped)", 120, proc)
    print(f"worker ready with its clock {offset}")


def fill(folder: Path) -> Fault:
    """Fill the file system of `folder` to the last byte; heal by removing the filler."""
    filler = folder / "filler"

    def apply() -> None:
        free = shutil.disk_usage(folder).free
        with contextlib.suppress(OSError), filler.open("wb") as out:
            out.write(b"\0" * free)
        print(f"{folder}: {shutil.disk_usage(folder).free} bytes free")

    return apply, lambda: filler.unlink(missing_ok=True)


def faults(settings: Settings) -> dict[str, Fault]:
    """Each fault: (apply, heal)."""
    redis_proc = redis.managed(settings)
    broker = kafka.managed(settings)
    triton_proc = triton.managed(settings)
    table: dict[str, Fault] = {
        "worker": restart_process(settings, "worker"),
        "projector": restart_process(settings, "projector"),
        "gateway": restart_process(settings, "gateway"),
        "dashboard": restart_process(settings, "dashboard"),
        "redis": (
            lambda: redis_proc.stop(timeout_s=0, sig=signal.SIGKILL),
            lambda: print(redis.start(settings)),
        ),
        "broker": (
            lambda: broker.stop(timeout_s=0, sig=signal.SIGKILL),
            lambda: print(kafka.start(settings)),
        ),
        "dockerd": (lambda: dockerd.stop(settings), lambda: print(dockerd.start(settings))),
        "triton": (
            lambda: triton_proc.stop(timeout_s=0, sig=signal.SIGKILL),
            lambda: print(triton.start(settings)),
        ),
        "triton-frozen": (
            lambda: signal_group(triton_proc.pid(), signal.SIGSTOP),
            lambda: signal_group(triton_proc.pid(), signal.SIGCONT),
        ),
        "disk-full": fill(settings.chdb_path),
        "clock": (lambda: worker_with_clock(settings, "+1h"), lambda: None),
    }
    if settings.kafka_brokers > 1:
        table["leader"] = leader(settings)
        table["rolling"] = rolling(settings)
    return table


def leader(settings: Settings) -> Fault:
    killed: list[kafka.Node] = []

    def apply() -> None:
        node = kafka.leader_with_most_partitions(settings)
        kafka.stop_node(settings, node, sig=signal.SIGKILL)
        killed.append(node)

    return apply, lambda: kafka.start_node(settings, killed.pop())


def rolling(settings: Settings) -> Fault:
    nodes = kafka.nodes(settings)

    def apply() -> None:
        for node in nodes[:-1]:
            kafka.stop_node(settings, node)
            kafka.start_node(settings, node)
        kafka.stop_node(settings, nodes[-1])

    return apply, lambda: kafka.start_node(settings, nodes[-1])


def run_fault(
    settings: Settings,
    name: str,
    apply: Callable[[], object],
    heal: Callable[[], object],
    rate: float,
    hold_s: float,
    job_rate: float = 0.0,
    users: int = 8,
) -> Score:
    """The load for a warm-up, the fault applied and held `hold_s`, then healed, and the
    load on for 10 s after the heal is done; then the reconcile."""
    run = f"{name}-{uuid.uuid4().hex[:6]}"
    names = [f"faults-{run}-u{i}" for i in range(users)]
    keys = asyncio.run(api_keys(settings, names))
    warm_s, after_s = 3.0, 10.0
    healed_at = [0.0]

    async def fault() -> None:
        await asyncio.sleep(warm_s)
        await asyncio.to_thread(apply)
        await asyncio.sleep(hold_s)
        healed_at[0] = time.time()  # recovery counts the restart itself
        await asyncio.to_thread(heal)

    load = asyncio.run(run_load(settings, keys, run, rate, job_rate, fault, after_s))
    deadline = time.monotonic() + LAND_WAIT_S
    while not all_landed(settings, run, load) and time.monotonic() < deadline:
        time.sleep(1)
    time.sleep(2)  # a duplicate would land now
    events = events_outcome(settings, run, load, healed_at[0])
    jobs, dead = jobs_outcome(settings, load, healed_at[0])
    held = left_over(settings, names)
    missed, doubled = subscribers(load)
    rows, records = events.rows, records_on_topic(settings, run)
    # Recovered: everything accepted up to the heal has its outcome, and requests are
    # accepted again.
    caught_up = max(events.caught_up_at, jobs.caught_up_at)
    after = [t for t in load.accepted.values() if t > healed_at[0]]
    serving = min(after, default=float("inf"))
    return Score(
        name,
        events.accepted + jobs.accepted,
        sum(load.refused.values()),
        events.lost + jobs.lost,
        events.duplicated + jobs.duplicated,
        events.stuck + jobs.stuck,
        dead,
        missed,
        doubled,
        f"{load.reconnects}/{users}",
        f"{rows} = {records}" if rows == records else f"{rows} ≠ {records}",
        held,
        max(0.0, max(caught_up, serving) - healed_at[0]),
    )


def left_over(settings: Settings, users: list[str]) -> list[str]:
    """What the run still holds once its containers have had time to be stopped."""
    deadline = time.monotonic() + HELD_WAIT_S
    while True:
        held = left_held(settings, users)
        leases = live_leases(settings)
        held += [f"{leases} GPU pool leases"] if leases else []
        with contextlib.suppress(Exception):  # dockerd down for good: nothing to ask
            held += [f"on the engine: {c}" for c in on_engine(settings, users)]
        if not held or time.monotonic() > deadline:
            return held
        time.sleep(2)


def scoreboard(scores: list[Score]) -> str:
    lines = [
        "| fault | accepted | refused (client retries) | lost | duplicated | stuck "
        "| dead-lettered | subscribers: missed / doubled / resumed | rows = topic records "
        "| left held | recovered in |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in scores:
        held = ", ".join(s.held) or "nothing"
        lines.append(
            f"| {s.fault} | {s.accepted} | {s.refused} | {s.lost} | {s.duplicated} | {s.stuck}"
            f" | {s.dead_lettered} | {s.missed} / {s.doubled} / {s.resumed} | {s.rows_records}"
            f" | {held}"
            f" | {s.recover_s:.1f} s |"
        )
    return "\n".join(lines)


def bench_settings(brokers: int) -> Settings:
    name = f"b{brokers}"
    namespace = f"faults{uuid.uuid4().hex[:6]}"
    base = free_port()  # broker n: base + 2(n-1) and the next port
    return Settings(
        data_dir=ROOT / name,
        namespace=namespace,
        clickhouse_database=namespace,
        chdb_dir=ROOT / name / "chdb",
        kafka_port=base,
        kafka_controller_port=base + 1,
        kafka_brokers=brokers,
        kafka_heap="256m" if brokers > 1 else "512m",
        redis_port=free_port(),
        gateway_port=free_port(),
        projector_port=free_port(),
        worker_web_port=free_port(),
        dashboard_port=free_port(),
        triton_url=f"127.0.0.1:{free_port()}",
        rate_limits="100000/s,10000000/m,100000000/h",
        rate_limits_containers="1000/s,10000/m,100000/h",
        worker_session_timeout_s=6.0,
        retry_base_ms=1000,
        projector_batch_ms=200,
        log_level="WARNING",
    )


def mount_tmpfs(folder: Path) -> None:
    """chDB's folder on a tmpfs of its own (root), so that it can be filled."""
    folder.mkdir(parents=True, exist_ok=True)
    mounts = Path("/proc/mounts").read_text()
    if f" {folder.resolve()} tmpfs " in mounts:
        shutil.rmtree(folder / "data", ignore_errors=True)
        return
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(folder)], check=True
    )


ALL = "worker,projector,gateway,dashboard,redis,broker,dockerd,triton,triton-frozen,disk-full,clock"


def main(
    names: str = typer.Option(ALL, "--faults", help="comma-separated, in this order"),
    brokers: int = typer.Option(1, help="1, or 3 for the leader and rolling faults"),
    rate: float = typer.Option(40.0, help="events per second"),
    job_rate: float = typer.Option(1.0, help="jobs per second (inference, containers)"),
    hold_s: float = typer.Option(5.0, "--hold", help="seconds each fault is held"),
    keep_up: bool = typer.Option(False, help="leave the stack running at the end"),
) -> None:
    settings = bench_settings(brokers)
    mount_tmpfs(settings.chdb_path)
    stack.up(settings, jobs=job_rate > 0)
    table = faults(settings)
    scores = []
    try:
        for name in names.split(","):
            apply, heal = table[name]
            scores.append(run_fault(settings, name, apply, heal, rate, hold_s, job_rate))
            print(scoreboard(scores[-1:]), flush=True)
    finally:
        print(scoreboard(scores))
        if not keep_up:
            stack.down(settings)  # Triton and dockerd too


if __name__ == "__main__":
    typer.run(main)
