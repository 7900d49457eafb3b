"""Liveness of a process's loops: each loop beats once per round; one that has not beaten
for `stuck_after_s` is stuck (hung, or died quietly), and the process's `/healthz/live`
answers 503 so that it is restarted.

A loop waiting on a dependency that is down still beats (each retry is a round): liveness
is for what a restart can fix; readiness and stalls say the rest.
"""

from __future__ import annotations

import time

from prometheus_client import Gauge

LAST_BEAT = Gauge(
    "tributary_loop_last_beat_timestamp_seconds",
    "When each loop of this process last went round (Unix time).",
    ["loop"],
)

_last: dict[str, float] = {}


def beat(loop: str) -> None:
    """Called by `loop` once per round."""
    _last[loop] = time.monotonic()
    LAST_BEAT.labels(loop=loop).set(time.time())


def forget(loop: str) -> None:
    """`loop` ended on purpose (a drain): no longer expected to beat."""
    _last.pop(loop, None)


def stuck(stuck_after_s: float, now: float | None = None) -> list[str]:
    """The loops that have beaten once and not for `stuck_after_s` since."""
    now = time.monotonic() if now is None else now
    return sorted(name for name, at in _last.items() if now - at > stuck_after_s)
