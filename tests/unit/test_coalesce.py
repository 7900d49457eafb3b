"""Coalescer: concurrent submits share flushes, each caller gets its own result or error;
with_deadline: one timer bounds a batch's acknowledgement."""

from __future__ import annotations

import asyncio

import pytest

from gateway.coalesce import Coalescer
from gateway.record_batches import with_deadline


class Recorder:
    """A flush that doubles each item, slowly, and remembers the batches it saw."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.fail_on = fail_on
        self.release = asyncio.Event()

    async def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(items)
        await self.release.wait()
        if self.fail_on in items:
            raise ValueError(f"bad item {self.fail_on}")
        return [i * 2 for i in items]


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_callers_waiting_during_a_flush_go_together_in_the_next() -> None:
    async def scenario() -> tuple[list[int], list[list[int]]]:
        flush = Recorder()
        coalescer = Coalescer(flush)
        first = asyncio.ensure_future(coalescer.submit(0))
        await _settle()  # the first flush is in flight with [0]
        rest = [asyncio.ensure_future(coalescer.submit(i)) for i in range(1, 6)]
        await _settle()
        flush.release.set()
        return await asyncio.gather(first, *rest), flush.batches

    results, batches = asyncio.run(scenario())
    assert results == [0, 2, 4, 6, 8, 10]
    assert batches == [[0], [1, 2, 3, 4, 5]]


def test_batches_are_cut_at_max_batch_and_in_flight_is_bounded() -> None:
    async def scenario() -> list[list[int]]:
        flush = Recorder()
        coalescer = Coalescer(flush, max_batch=2, max_in_flight=2)
        calls = [asyncio.ensure_future(coalescer.submit(i)) for i in range(7)]
        await _settle()
        assert flush.batches == [[0, 1], [2, 3]]  # two in flight, the rest wait
        flush.release.set()
        assert await asyncio.gather(*calls) == [i * 2 for i in range(7)]
        return flush.batches

    assert asyncio.run(scenario()) == [[0, 1], [2, 3], [4, 5], [6]]


def test_a_failed_flush_fails_its_callers_only() -> None:
    async def scenario() -> list[object]:
        flush = Recorder(fail_on=1)
        coalescer = Coalescer(flush)
        first = asyncio.ensure_future(coalescer.submit(0))
        await _settle()
        failing = [asyncio.ensure_future(coalescer.submit(i)) for i in (1, 2)]
        await _settle()
        flush.release.set()
        outcomes = await asyncio.gather(first, *failing, return_exceptions=True)
        later = await coalescer.submit(3)  # the coalescer still works
        return [*outcomes, later]

    first, one, two, later = asyncio.run(scenario())
    assert first == 0 and later == 6
    assert isinstance(one, ValueError) and isinstance(two, ValueError)


def test_a_caller_that_goes_away_does_not_disturb_the_others() -> None:
    async def scenario() -> list[int]:
        flush = Recorder()
        coalescer = Coalescer(flush)
        calls = [asyncio.ensure_future(coalescer.submit(i)) for i in range(3)]
        await _settle()
        calls[1].cancel()
        flush.release.set()
        return [await calls[0], await calls[2]]

    assert asyncio.run(scenario()) == [0, 4]


def test_a_flush_returning_the_wrong_number_of_results_is_an_error() -> None:
    async def short(items: list[int]) -> list[int]:
        return items[:-1]

    async def scenario() -> None:
        coalescer = Coalescer(short)
        await asyncio.gather(coalescer.submit(1), coalescer.submit(2))

    with pytest.raises(RuntimeError, match="1 results for 2"):
        asyncio.run(scenario())


def test_with_deadline_passes_the_outcome_on_or_times_out() -> None:
    async def scenario() -> tuple[list[object], BaseException | None, float]:
        loop = asyncio.get_running_loop()
        ok, failing, silent = loop.create_future(), loop.create_future(), loop.create_future()
        started = loop.time()
        acks = [with_deadline(f, started + 0.2) for f in (ok, failing, silent)]
        ok.set_result("meta")
        failing.set_exception(ValueError("broker said no"))
        outcomes = await asyncio.gather(*acks, return_exceptions=True)
        silent.set_result("too late")  # the deadline's answer stands
        await asyncio.sleep(0)
        return outcomes, acks[2].exception(), loop.time() - started

    (ok, failing, silent), late, waited = asyncio.run(scenario())
    assert ok == "meta"
    assert isinstance(failing, ValueError)
    assert isinstance(silent, TimeoutError) and isinstance(late, TimeoutError)
    assert 0.19 <= waited < 5  # not before the deadline; the bound only catches a hang
