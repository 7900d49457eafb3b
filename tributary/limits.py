"""Multi-window GCRA rate limiting, the pure math (the Redis Lua script mirrors it).

GCRA (generic cell rate algorithm) keeps one number per window, the theoretical
arrival time (TAT). A window "N per P" lets a burst of exactly N through from rest,
then one request every P/N: no fixed-window edge where a second burst slips through
at once. The guarantee is GCRA's: over any interval of length L at most
N + floor(L / (P/N)) requests pass, so sustained rate N/P with bursts up to N. A request is
admitted only if every window admits it, and only then do the windows record it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_WINDOW = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*(ms|s|m|h|d)\s*$")


@dataclass(frozen=True)
class Window:
    """At most `limit` requests per `period_ms` (as a burst from rest)."""

    limit: int
    period_ms: int

    def __post_init__(self) -> None:
        if self.limit < 1 or self.period_ms < 1:
            raise ValueError("a window needs limit >= 1 and period >= 1 ms")

    @property
    def emission_ms(self) -> float:
        return self.period_ms / self.limit

    def __str__(self) -> str:
        return f"{self.limit}/{self.period_ms}ms"


def parse_windows(spec: str) -> tuple[Window, ...]:
    """`"10/s, 100/m, 1000/h"` (or `10/1s`, `5/30s`) → windows. Raises ValueError."""
    windows = []
    for part in spec.split(","):
        match = _WINDOW.match(part)
        if not match:
            raise ValueError(f"bad rate-limit window {part!r}; use e.g. '10/s' or '100/60s'")
        limit, count, unit = match.groups()
        windows.append(Window(int(limit), int(count or 1) * _UNITS_MS[unit]))
    if not windows:
        raise ValueError("no rate-limit windows")
    return tuple(windows)


@dataclass(frozen=True)
class Decision:
    """The answer for one request, and what to put in the RateLimit-* headers."""

    allowed: bool
    limit: int  # of the window that binds (least remaining)
    remaining: int
    reset_ms: int  # until that window is fully replenished
    retry_after_ms: int  # 0 when allowed


def decide(
    tats: list[int | None], windows: tuple[Window, ...], now_ms: int, cost: int = 1
) -> tuple[Decision, list[int | None]]:
    """Decide one request of `cost` at integer `now_ms` given each window's stored TAT.

    A window's TAT is kept in units of 1/limit ms, so its emission interval is exactly
    `period_ms` units and all arithmetic is on integers (exact in Lua's doubles too,
    up to 2**53). Returns the decision and the TATs to store (unchanged when refused).
    """
    if cost < 1:
        raise ValueError("cost must be >= 1")
    new_tats: list[int | None] = []
    retry_after = 0
    binding: tuple[int, int, int] | None = None  # (remaining, limit, reset_ms)
    for tat, window in zip(tats, windows, strict=True):
        now = now_ms * window.limit
        start = max(tat if tat is not None else now, now)
        new_tat = start + cost * window.period_ms
        allow_at = new_tat - window.period_ms * window.limit
        if allow_at > now:
            retry_after = max(retry_after, _ceil_div(allow_at - now, window.limit))
            free = now + window.period_ms * window.limit - start
            reset = start - now
        else:
            free = now + window.period_ms * window.limit - new_tat
            reset = new_tat - now
        remaining = max(0, free // window.period_ms)
        new_tats.append(new_tat)
        if binding is None or remaining < binding[0]:
            binding = (remaining, window.limit, _ceil_div(reset, window.limit))
    assert binding is not None
    allowed = retry_after == 0
    decision = Decision(allowed, binding[1], binding[0], binding[2], retry_after)
    return decision, (new_tats if allowed else list(tats))


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)
