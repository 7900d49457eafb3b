"""Liveness: the process is up and its resident memory is under a limit.

What `/healthz/live` answers on the gateway and on the worker. A process over
`TRIBUTARY_LIVE_MAX_RSS_MB` answers 503, so that its supervisor (Kubernetes' liveness
probe) restarts it on its own terms instead of the kernel's OOM killer in the middle of
a write. A blocked event loop fails the probe as well: the page is served by that loop,
so the probe times out.
"""

from __future__ import annotations

from typing import Any

import psutil

MIB = 1024 * 1024


def verdict(rss_bytes: int, max_rss_mb: int) -> tuple[bool, dict[str, Any]]:
    """(alive, the page's body) for a process holding `rss_bytes` of memory."""
    alive = rss_bytes < max_rss_mb * MIB
    return alive, {
        "status": "up" if alive else "down",
        "rss_mb": round(rss_bytes / MIB, 1),
        "max_rss_mb": max_rss_mb,
    }


def check(max_rss_mb: int) -> tuple[bool, dict[str, Any]]:
    """`verdict` for this process now (resident set size, as the kernel counts it)."""
    # A new Process each time: a cached one would keep the parent's pid in a forked worker.
    return verdict(psutil.Process().memory_info().rss, max_rss_mb)
