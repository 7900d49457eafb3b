"""The executors' circuit breakers (purgatory): they open after consecutive failures of a
dependency, park attempts instead of failing them, let one probe after the open time, and
close on its success. Permanent errors (the job's fault) do not count."""

from __future__ import annotations

import asyncio
import time

import pytest

from streams.jobs.runners.breakers import Breakers, OpenedState
from streams.jobs.runners.errors import RunnerError
from streams.metrics import CIRCUIT_OPEN

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
        breakers = Breakers(failures=2, open_s=OPEN_S)
        for _ in range(3):
            with pytest.raises(RunnerError):
                await breakers.call("docker", permanent)
        assert breakers.open() == []
        for _ in range(2):
            with pytest.raises(TimeoutError):
                await breakers.call("docker", slow)
        assert breakers.open() == ["docker"]

    asyncio.run(scenario())
