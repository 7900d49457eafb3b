"""CPU seconds spent by the processes of a bench run: who pays for each event.

Events/s alone hides where the time goes when the gateway, the broker, Redis and the load
generator share the same cores. `cpu_spent` reads each named process's CPU time (user +
system, child processes included, e.g. uvicorn's workers) before and after a run.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import psutil

BENCH = "bench process (+ wrk)"


def process_tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of `pid` and its live descendants (0 if it is gone)."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def own_cpu_s() -> float:
    """This process's CPU seconds plus those of its finished children (the wrk runs)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _snapshot(pids: Mapping[str, int | None]) -> dict[str, float]:
    now = {name: process_tree_cpu_s(pid) for name, pid in pids.items() if pid}
    now[BENCH] = own_cpu_s()
    return now


@contextmanager
def cpu_spent(pids: Mapping[str, int | None]) -> Iterator[dict[str, float]]:
    """`with cpu_spent({"broker": pid}) as spent:` ... then `spent` holds CPU seconds per
    process over the block, plus this process's own (with wrk's) under `BENCH`."""
    spent: dict[str, float] = {}
    before = _snapshot(pids)
    yield spent
    after = _snapshot(pids)
    spent.update({name: after[name] - before.get(name, 0.0) for name in after})


def per_event_us(spent: Mapping[str, float], events: float) -> dict[str, float]:
    """CPU µs per event of each process, for `events` events in the run."""
    return {name: seconds / events * 1e6 for name, seconds in spent.items()}
