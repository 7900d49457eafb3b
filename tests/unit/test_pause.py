"""The loops' one backoff: doubling waits up to the cap, back to the first after a success."""

from __future__ import annotations

import asyncio

import pytest

from tributary import pause as pause_module
from tributary.pause import Pause


def test_waits_double_up_to_the_cap_and_start_over_after_a_success(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(pause_module.asyncio, "sleep", sleep)

    async def scenario() -> None:
        pause = Pause()
        for _ in range(7):
            await pause.wait()
        pause.reset()
        await pause.wait()
        polling = Pause(0.01, cap_s=0.05)
        for _ in range(4):
            await polling.wait()

    asyncio.run(scenario())
    assert slept == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 0.2, 0.01, 0.02, 0.04, 0.05]
