"""The one backoff of every loop that must keep going through a failure (a broker, Redis or
the engine away): wait, double the wait, up to a cap; back to the first wait on success.

Job attempts have their own, with jitter and in event time (`streams.jobs.retries.Backoff`):
they are decisions replayed from the log; these are waits of a running process.
"""

from __future__ import annotations

import asyncio


class Pause:
    """0.2 s, 0.4 s, 0.8 s, ... at most `cap_s` (by default 5 s) between tries."""

    def __init__(self, first_s: float = 0.2, cap_s: float = 5.0) -> None:
        self.first_s = first_s
        self.cap_s = cap_s
        self.next_s = first_s

    async def wait(self) -> None:
        """Sleep the next wait; the one after is twice as long, up to the cap."""
        await asyncio.sleep(self.next_s)
        self.next_s = min(self.next_s * 2, self.cap_s)

    def reset(self) -> None:
        """After a success: the next failure waits the first wait again."""
        self.next_s = self.first_s
