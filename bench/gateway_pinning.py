"""Does a core of its own cut the gateway's half-rate p99? Interleaved, in one run.

One gateway process under `bench.gateway`'s load. After a warm-up and a saturated wrk run
that sets the rate, rounds of the half-rate open-loop run (row 3 of `bench.gateway`) two
ways, one after the other:

- shared: every process may run on either core (how `bench.gateway` runs);
- pinned: the gateway (all its threads) on core 0; the broker, Redis and this process with
  its load generators on core 1 (`taskset`).

Then one saturated wrk run each way. Prints p50/p99 per round and the medians. Linux only.

Needs what `bench.gateway` needs:
    .venv/bin/python -m bench.gateway_pinning
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import time

import typer

from bench.gateway import (
    WARM_UP_S,
    bench_settings,
    open_loop,
    run_wrk,
    running_gateway,
    service_pids,
)

MODES = ("shared", "pinned")


def place(mode: str, gateway: int | None, others: list[int | None]) -> None:
    """Set the CPU affinity of every thread of these processes for `mode`."""
    for pid, cpus in [(gateway, "0"), *((p, "1") for p in others)]:
        if pid is not None:
            cpus = cpus if mode == "pinned" else "0-1"
            subprocess.run(
                ["taskset", "-a", "-p", "-c", cpus, str(pid)], check=True, capture_output=True
            )


def main(rounds: int = 6, seconds: int = 10, connections: int = 32) -> None:
    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        sys.exit("needs wrk and taskset: apt-get install -y wrk util-linux")
    if len(os.sched_getaffinity(0)) < 2:
        sys.exit("needs two cores")
    settings = bench_settings(workers=1)
    with running_gateway(settings) as (url, key, pid):
        others = [*service_pids().values(), os.getpid()]  # wrk inherits this process's cores
        run_wrk(url, key, WARM_UP_S, connections)
        rate, p50, p99 = run_wrk(url, key, seconds, connections)
        half = rate / 2
        print(f"saturated, shared: {rate:,.0f}/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms")
        print(f"\n| round | {' | '.join(f'{m} p50 / p99 ms' for m in MODES)} |\n|---|---|---|")
        p99s: dict[str, list[float]] = {m: [] for m in MODES}
        for r in range(rounds):
            cells = []
            for mode in MODES:
                place(mode, pid, others)
                time.sleep(1)
                h50, h99, errors = asyncio.run(open_loop(url, key, half, seconds))
                p99s[mode].append(h99)
                cells.append(f"{h50:.1f} / {h99:.1f}" + (f" ({errors} not 202)" if errors else ""))
            print(f"| {r + 1} at {half:,.0f}/s | {' | '.join(cells)} |", flush=True)
        print(
            "| median p99 | "
            + " | ".join(
                f"{statistics.median(p99s[m]):.1f} ({sum(v < 20 for v in p99s[m])} of "
                f"{rounds} under 20)"
                for m in MODES
            )
            + " |"
        )
        for mode in MODES:
            place(mode, pid, others)
            rate, p50, p99 = run_wrk(url, key, seconds, connections)
            print(f"saturated, {mode}: {rate:,.0f}/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms")
        place("shared", pid, others)


if __name__ == "__main__":
    typer.run(main)
