from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tributary.progress import ProgressWatch


def test_lag_without_progress_is_a_stall() -> None:
    watch: ProgressWatch[str] = ProgressWatch(stall_after_s=10)
    watch.observe("p0", 100, 150, now=0)
    watch.observe("p0", 100, 160, now=9.9)
    assert watch.stalled(now=9.9) == []
    assert watch.stalled(now=10) == ["p0"]


def test_progress_or_no_lag_is_not_a_stall() -> None:
    watch: ProgressWatch[str] = ProgressWatch(stall_after_s=10)
    watch.observe("moving", 100, 150, now=0)
    watch.observe("moving", 120, 150, now=15)
    watch.observe("idle", 150, 150, now=0)
    watch.observe("idle", 150, 150, now=60)
    assert watch.stalled(now=20) == []


def test_forgotten_partitions_are_not_reported() -> None:
    watch: ProgressWatch[str] = ProgressWatch(stall_after_s=1)
    watch.observe("p0", 0, 5, now=0)
    watch.forget("p0")
    assert watch.stalled(now=100) == []


def test_stall_after_must_be_positive() -> None:
    with pytest.raises(ValueError):
        ProgressWatch(0)


@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), min_size=1, max_size=30))
def test_a_partition_that_moves_every_check_never_stalls(steps: list[tuple[int, int]]) -> None:
    watch: ProgressWatch[str] = ProgressWatch(stall_after_s=1)
    position = 0
    for i, (advance, lag) in enumerate(steps):
        position += advance + 1
        watch.observe("p", position, position + lag, now=float(i))
        assert watch.stalled(now=float(i)) == []
