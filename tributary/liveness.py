"""Liveness: the process is up and its resident memory is under a limit.

What `/healthz/live` answers on the gateway and on the worker. A process over
`TRIBUTARY_LIVE_MAX_RSS_MB` answers 503, so that its supervisor (Kubernetes' liveness
probe) restarts it on its own terms instead of the kernel's OOM killer in the middle of
a write. A blocked event loop fails the probe as well: the page is served by that loop,
so the probe times out; and so does a loop of the process that stopped going round
(`tributary.heartbeats`): the worker's and the projector's pages name it.
"""

from __future__ import annotations

from typing import Any

import psutil

from tributary import heartbeats

MIB = 1024 * 1024


def verdict(
    rss_bytes: int, max_rss_mb: int, stuck: list[str] | None = None
) -> tuple[bool, dict[str, Any]]:
    """(alive, the page's body) for a process holding `rss_bytes` of memory, whose loops
    `stuck` have stopped going round."""
    alive = rss_bytes < max_rss_mb * MIB and not stuck
    return alive, {
        "status": "up" if alive else "down",
        "rss_mb": round(rss_bytes / MIB, 1),
        "max_rss_mb": max_rss_mb,
        "stuck_loops": stuck or [],
    }


def check(max_rss_mb: int, stuck_after_s: float | None = None) -> tuple[bool, dict[str, Any]]:
    """`verdict` for this process now (resident set size, as the kernel counts it; with
    `stuck_after_s`, its loops' heartbeats too)."""
    stuck = heartbeats.stuck(stuck_after_s) if stuck_after_s is not None else []
    # A new Process each time: a cached one would keep the parent's pid in a forked worker.
    return verdict(psutil.Process().memory_info().rss, max_rss_mb, stuck)
