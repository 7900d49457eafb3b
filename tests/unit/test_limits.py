from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tributary.limits import Window, decide, parse_windows


def run(windows: tuple[Window, ...], times: list[int], cost: int = 1) -> list[bool]:
    tats: list[int | None] = [None] * len(windows)
    results = []
    for now in times:
        decision, tats = decide(tats, windows, now, cost)
        results.append(decision.allowed)
    return results


def test_parse() -> None:
    assert parse_windows("10/s, 100/m,1000/h") == (
        Window(10, 1000),
        Window(100, 60_000),
        Window(1000, 3_600_000),
    )
    assert parse_windows("5/30s") == (Window(5, 30_000),)
    with pytest.raises(ValueError):
        parse_windows("ten per second")


@given(limit=st.integers(1, 200), period=st.integers(1, 100_000), at=st.integers(0, 2 * 10**12))
def test_burst_from_rest_admits_exactly_the_limit(limit: int, period: int, at: int) -> None:
    results = run((Window(limit, period),), [at] * (limit + 1))
    assert results == [True] * limit + [False]


def test_no_double_burst_at_a_window_edge() -> None:
    # A fixed window would admit 10 at t=999 and 10 more at t=1000.
    window = (Window(10, 1000),)
    tats: list[int | None] = [None]
    admitted = 0
    for now in [999] * 10 + [1000] * 10:
        decision, tats = decide(tats, window, now)
        admitted += decision.allowed
    assert admitted == 10


def test_refused_requests_are_not_counted() -> None:
    window = (Window(2, 1000),)
    assert run(window, [0, 0, 0, 0, 0, 500]) == [True, True, False, False, False, True]


def test_every_window_must_admit() -> None:
    windows = (Window(10, 1000), Window(15, 60_000))
    # 10 at t=0, 5 more after the per-second window refills, then the minute window binds.
    times = [0] * 10 + [1000] * 10
    assert run(windows, times).count(True) == 15
    tats: list[int | None] = [None, None]
    for now in times:
        decision, tats = decide(tats, windows, now)
    assert not decision.allowed
    assert decision.limit == 15
    assert decision.remaining == 0
    assert decision.retry_after_ms == 3000  # a minute-window slot frees every 4 s, at t=4000


def test_retry_after_is_when_it_would_be_admitted() -> None:
    window = (Window(5, 1000),)
    tats: list[int | None] = [None]
    for _ in range(5):
        decision, tats = decide(tats, window, 0)
    decision, _ = decide(tats, window, 0)
    assert (decision.allowed, decision.retry_after_ms) == (False, 200)
    assert decide(tats, window, 199)[0].allowed is False
    assert decide(tats, window, 200)[0].allowed is True


def test_cost_counts_as_that_many_requests() -> None:
    window = (Window(10, 1000),)
    assert run(window, [0, 0, 0], cost=4) == [True, True, False]


@given(st.lists(st.integers(0, 10_000), min_size=1, max_size=60), st.integers(1, 5000))
def test_gcra_bound_holds_over_any_interval(offsets: list[int], length: int) -> None:
    window = Window(5, 1000)
    times = sorted(offsets)
    admitted = [t for t, ok in zip(times, run((window,), times), strict=True) if ok]
    bound = window.limit + int(length // window.emission_ms)
    for t in admitted:
        assert len([u for u in admitted if t <= u < t + length]) <= bound
