"""Circuit breakers around the executors' dependencies (Docker, Triton), from `purgatory`.

After `failures` consecutive failures of a dependency (its errors that are not permanent,
and timeouts), its breaker opens: attempts stop calling it and are parked (they wait,
holding their executor slot, so the tier's loop stops taking new work once every slot is
parked) instead of burning attempts against a dependency that is down. After `open_s` one
attempt probes it (half-open): a success closes the breaker and the parked attempts go
on; a failure opens it again. State: `tributary_circuit_open{dependency}`, and the worker's
readiness answer lists open circuits (without going unready: the dependency is not this
worker's to fix).

purgatory, not aiobreaker: it is asyncio-native, kept (3.0, 2024), and typed; aiobreaker's
last release is from 2021.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState

from streams.jobs.runners.errors import RunnerError
from streams.metrics import CIRCUIT_OPEN

log = structlog.get_logger(__name__)

T = TypeVar("T")


class Breakers:
    def __init__(self, failures: int, open_s: float) -> None:
        self.open_s = open_s
        # A permanent error (a bad image name, a model that does not exist) is the job's
        # fault, not the dependency's: it does not count.
        permanent = (RunnerError, lambda exc: exc.permanent)
        self._factory = AsyncCircuitBreakerFactory(
            default_threshold=failures, default_ttl=open_s, exclude=[permanent]
        )
        self._opened_at: dict[str, float] = {}  # open breakers: when they opened

    def open(self) -> list[str]:
        """The dependencies whose breaker is open now (readiness)."""
        return sorted(self._opened_at)

    async def parked(self, dependency: str, going: Callable[[], None]) -> None:
        """Wait while `dependency`'s breaker is open and not due for a probe; `going` is
        called every second (a parked attempt is waiting, not stuck)."""
        while (opened := self._opened_at.get(dependency)) is not None:
            due_in = opened + self.open_s - time.time()
            if due_in <= 0:
                return
            going()
            await asyncio.sleep(min(due_in, 1.0))

    async def call(self, dependency: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """`attempt()` through `dependency`'s breaker. Raises `OpenedState` when the breaker
        opened meanwhile (another attempt's failure): park, then call again."""
        breaker = await self._factory.get_breaker(dependency)
        try:
            async with breaker:
                return await attempt()
        finally:
            self._note(dependency, breaker.context.state, breaker.context.opened_at)

    def _note(self, dependency: str, state: str, opened_at: float | None) -> None:
        was_open = dependency in self._opened_at
        if state == "opened":
            self._opened_at[dependency] = opened_at or time.time()
        else:
            self._opened_at.pop(dependency, None)
        CIRCUIT_OPEN.labels(dependency=dependency).set(1 if state == "opened" else 0)
        if was_open != (state == "opened"):
            log.warning("circuit " + ("opened" if state == "opened" else "closed"), of=dependency)


__all__ = ["Breakers", "OpenedState"]
