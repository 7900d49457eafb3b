"""Health pages on the worker's Faust web server: liveness, readiness, Prometheus metrics.

Readiness and stall detection cover both Faust's agents and the transactional loops.
Readiness is false while a loop restores its partitions, once SIGTERM has started the
drain (streams/worker.py), and while a partition is stalled.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import faust
import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.metrics import STALLED
from streams.runtime.transactional import TransactionalLoop
from tributary import liveness
from tributary.ops_metrics import READY, report_lag
from tributary.progress import ProgressWatch
from tributary.settings import Settings

log = structlog.get_logger(__name__)


def ready(app: faust.App, loops: list[TransactionalLoop]) -> bool:
    """Assigned, recovered, and not in the middle of a rebalance."""
    faust_ready = app.rebalancing_count > 0 and not app.rebalancing and not app.in_recovery
    return bool(faust_ready and all(loop.ready for loop in loops))


def install(
    app: faust.App,
    settings: Settings,
    loops: list[TransactionalLoop],
    draining: Callable[[], bool],
    open_circuits: Callable[[], list[str]] = list,
) -> None:
    """`/healthz/live` (memory, and every loop still going round), `/healthz/ready` (assigned
    and restored, not draining, no partition stalled; open circuits are listed), `/metrics`;
    a watch every 5 s."""
    progress: ProgressWatch[Any] = ProgressWatch(settings.stall_after_s)
    stalled: list[str] = []

    async def watch_progress() -> None:
        # Faust's monitor keeps what was committed and each partition's end offset.
        monitor = app.monitor
        now = time.monotonic()
        for tp, end in dict(monitor.tp_end_offsets).items():
            committed = monitor.tp_committed_offsets.get(tp)
            if committed is not None:
                # A topic written in transactions ends with a commit marker no consumer
                # ever reads past, so one offset of "lag" is not work waiting.
                progress.observe(tp, committed, max(committed, end - 1), now)
        for loop in loops:
            for tp, position, highwater in loop.progress():
                if highwater is not None:
                    end = max(position, highwater - 1)
                    progress.observe(tp, position, end, now)
                    report_lag(loop.group, tp.topic, tp.partition, position, end)
        stalled[:] = [f"{tp.topic}:{tp.partition}" for tp in progress.stalled(now)]
        STALLED.set(len(stalled))
        if stalled:
            log.warning("stalled partitions", partitions=stalled)

    app.timer(5.0, name="progress-watch")(watch_progress)

    async def live(self: Any, request: Any) -> Any:
        alive, body = liveness.check(settings.live_max_rss_mb, settings.loop_stuck_after_s)
        return self.json(body, status=200 if alive else 503)

    async def readiness(self: Any, request: Any) -> Any:
        # Reported, not a reason to be unready: a dependency down is not this worker's to
        # fix, and its parked attempts go on by themselves when the probe succeeds.
        circuits = open_circuits()
        ok = ready(app, loops) and not draining() and not stalled
        READY.set(1 if ok else 0)
        return self.json(
            {
                "status": "up" if ok else "down",
                "draining": draining(),
                "rebalancing": bool(app.rebalancing),
                "in_recovery": bool(app.in_recovery),
                "rebalances": app.rebalancing_count,
                "loops": {loop.processor.name: loop.ready for loop in loops},
                "stalled": list(stalled),
                "circuits_open": circuits,
            },
            status=200 if ok else 503,
        )

    async def metrics(self: Any, request: Any) -> Any:
        # aiohttp refuses a charset inside content_type; Prometheus's text is UTF-8 anyway.
        content_type = CONTENT_TYPE_LATEST.replace("; charset=utf-8", "")
        return self.bytes(generate_latest(), content_type=content_type)

    app.page("/healthz/live")(live)
    app.page("/healthz/ready")(readiness)
    app.page("/metrics")(metrics)
