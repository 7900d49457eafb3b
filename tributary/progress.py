"""Stall detection (pure): a consumer that makes no progress while it has lag is stalled.

Every background consumer (projector, stream workers) feeds its partitions' positions and
end offsets in; readiness and a metric report what stalled, so "the consumer silently
stopped" shows up instead of hiding behind a live process.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass
class _Seen:
    position: int
    end: int
    since: float  # when `position` last changed


class ProgressWatch(Generic[K]):
    """Per key (a partition): stalled when behind its end and not moving for `stall_after_s`."""

    def __init__(self, stall_after_s: float) -> None:
        if stall_after_s <= 0:
            raise ValueError("stall_after_s must be > 0")
        self.stall_after_s = stall_after_s
        self._seen: dict[K, _Seen] = {}

    def observe(self, key: K, position: int, end: int, now: float) -> None:
        seen = self._seen.get(key)
        if seen is None or position != seen.position:
            self._seen[key] = _Seen(position, end, now)
        else:
            seen.end = end

    def forget(self, key: K) -> None:
        self._seen.pop(key, None)

    def stalled(self, now: float) -> list[K]:
        """Keys with lag that have not moved for `stall_after_s` or more."""
        return [
            key
            for key, seen in self._seen.items()
            if seen.end > seen.position and now - seen.since >= self.stall_after_s
        ]
