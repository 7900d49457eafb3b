"""The executors' circuit breakers (purgatory): they open after consecutive failures of a
dependency, park attempts instead of failing them, let one probe after the open time, and
close on its success. Permanent errors (the job's fault) do not count."""

from __future__ import annotations

import asyncio
import time

import pytest

from streams.jobs.runners.errors import RunnerError, job_breakers
from tributary.breakers import CIRCUIT_OPEN, Breakers, OpenedState
from tributary.settings import Settings

OPEN_S = 0.3


async def failing() -> None:
    raise ConnectionError("engine down")


async def fine() -> str:
    return "ok"


def gauge(dependency: str) -> float:
    return CIRCUIT_OPEN.labels(dependency=dependency)._value.get()  # type: ignore[no-any-return]


def test_opens_after_consecutive_failures_parks_then_a_probe_closes_it() -> None:
    async def scenario() -> None:
        breakers = Breakers(failures=2, open_s=OPEN_S)
        for _ in range(2):
            with pytest.raises(ConnectionError):
                await breakers.call("docker", failing)
        assert breakers.open() == ["docker"] and gauge("docker") == 1
        with pytest.raises(OpenedState):  # not called while open
            await breakers.call("docker", fine)
        beats = []
        started = time.monotonic()
        await breakers.parked("docker", lambda: beats.append(1))
        assert time.monotonic() - started >= OPEN_S * 0.9 and beats  # parked, not failed
        await breakers.parked("triton", lambda: beats.append(1))  # another dependency: no wait
        assert await breakers.call("docker", fine) == "ok"  # the probe
        assert breakers.open() == [] and gauge("docker") == 0

    asyncio.run(scenario())


def test_a_failed_probe_opens_it_again() -> None:
    async def scenario() -> None:
        breakers = Breakers(failures=1, open_s=OPEN_S)
        with pytest.raises(ConnectionError):
            await breakers.call("triton", failing)
        await breakers.parked("triton", lambda: None)
        with pytest.raises(ConnectionError):
            await breakers.call("triton", failing)  # the probe fails
        assert breakers.open() == ["triton"]

    asyncio.run(scenario())


def test_permanent_errors_and_timeouts() -> None:
    """A bad image is the job's fault: no count. A timeout (a slow Triton) counts."""

    async def permanent() -> None:
        raise RunnerError("no such image", permanent=True)

    async def slow() -> None:
        await asyncio.wait_for(asyncio.sleep(1), 0.01)

    async def scenario() -> None:
        breakers = job_breakers(Settings(breaker_failures=2, breaker_open_s=OPEN_S))
        for _ in range(3):
            with pytest.raises(RunnerError):
                await breakers.call("docker", permanent)
        assert breakers.open() == []
        for _ in range(2):
            with pytest.raises(TimeoutError):
                await breakers.call("docker", slow)
        assert breakers.open() == ["docker"]

    asyncio.run(scenario())


def test_one_parked_caller_probes_at_a_time() -> None:
    """When the open time is over, one caller probes; the others wait for its answer."""

    async def scenario() -> None:
        breakers = Breakers(failures=1, open_s=OPEN_S)
        with pytest.raises(ConnectionError):
            await breakers.call("docker", failing)
        calls: list[tuple[float, float]] = []  # (started, ended) of each call

        async def slow_probe(n: int) -> str:
            started = time.monotonic()
            await asyncio.sleep(0.2)
            calls.append((started, time.monotonic()))
            return "ok"

        async def caller(n: int) -> str:
            while True:
                await breakers.parked("docker", lambda: None)
                try:
                    return await breakers.call("docker", lambda: slow_probe(n))
                except OpenedState:
                    continue

        answers = await asyncio.gather(*(caller(n) for n in range(5)))
        assert answers == ["ok"] * 5
        # The first call is the probe: no other started before it ended.
        probe = min(calls)
        assert len(calls) == 5 and breakers.open() == []
        assert [c for c in calls if c[0] < probe[1]] == [probe], calls

    asyncio.run(scenario())
