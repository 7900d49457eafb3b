"""Circuit breakers around the dependencies a stage calls, from `purgatory`: Docker and
Triton for the executors (streams/jobs/runners/attempts.py), ClickHouse for the projector
(projections/projector.py).

After `failures` consecutive failures of a dependency (errors that `excluded` does not
rule out, and timeouts), its breaker opens: callers stop calling it and park instead of
burning attempts against a dependency that is down (an executor attempt waits, holding its
slot; the projector pauses its partitions and holds its insert). After `open_s` one parked
caller probes it (half-open): a success closes the breaker and the others go on; a failure
opens it again. State: `tributary_circuit_open{dependency}`, and the readiness answers of
the worker and the projector list open circuits (without going unready: the dependency is
not the process's to fix).

purgatory, not aiobreaker: it is asyncio-native, kept (3.0, 2024), and typed; aiobreaker's
last release is from 2021.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import structlog
from prometheus_client import Gauge
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState

log = structlog.get_logger(__name__)

T = TypeVar("T")

CLICKHOUSE = "clickhouse"

CIRCUIT_OPEN = Gauge(
    "tributary_circuit_open",
    "1 while the circuit breaker around a dependency is open (calls parked)",
    ["dependency"],
)

# An error of the caller's, not the dependency's: (type, predicate). It does not count.
Excluded = tuple[type[BaseException], Callable[[Any], bool]]


class Breakers:
    def __init__(self, failures: int, open_s: float, excluded: Sequence[Excluded] = ()) -> None:
        self.open_s = open_s
        self._factory = AsyncCircuitBreakerFactory(
            default_threshold=failures, default_ttl=open_s, exclude=list(excluded)
        )
        self._opened_at: dict[str, float] = {}  # open breakers: when they opened
        self._probing: dict[str, float] = {}  # a parked caller let through to probe: since

    def open(self) -> list[str]:
        """The dependencies whose breaker is open now (readiness)."""
        return sorted(self._opened_at)

    async def parked(self, dependency: str, going: Callable[[], None]) -> None:
        """Wait while `dependency`'s breaker is open and not due for a probe; `going` is
        called every second (a parked caller is waiting, not stuck). One caller at a time
        is let through to probe; the others wait for its answer (or for it to be late)."""
        while (opened := self._opened_at.get(dependency)) is not None:
            now = time.time()
            due_in = opened + self.open_s - now
            probing = self._probing.get(dependency)
            if due_in <= 0 and (probing is None or now - probing > self.open_s):
                self._probing[dependency] = now
                return
            going()
            await asyncio.sleep(min(max(due_in, 0.1), 1.0))

    async def call(self, dependency: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """`attempt()` through `dependency`'s breaker. Raises `OpenedState` when the breaker
        opened meanwhile (another attempt's failure): park, then call again."""
        breaker = await self._factory.get_breaker(dependency)
        called = True
        try:
            async with breaker:
                return await attempt()
        except OpenedState:
            called = False  # refused, not called: a probe in flight is another caller's
            raise
        finally:
            if called:  # a probe (or any call) has answered: the next may probe
                self._probing.pop(dependency, None)
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


__all__ = ["CIRCUIT_OPEN", "CLICKHOUSE", "Breakers", "Excluded", "OpenedState"]
