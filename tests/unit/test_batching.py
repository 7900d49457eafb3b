from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from projections.batching import Batcher, by_topic, dedup_token


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@given(st.lists(st.tuples(st.integers(0, 5), st.integers(1, 3)), max_size=200))
def test_drain_covers_every_row_in_contiguous_ranges(steps: list[tuple[int, int]]) -> None:
    batcher = Batcher(max_rows=10**9, max_ms=10**9)
    next_offset: dict[int, int] = {}
    added: dict[int, list[int]] = {}
    for partition, gap in steps:
        offset = next_offset.get(partition, 0) + gap - 1
        next_offset[partition] = offset + 1
        batcher.add("t", partition, offset, (offset,))
        added.setdefault(partition, []).append(offset)
    batches = batcher.drain()
    assert len(batcher) == 0
    assert {b.partition for b in batches} == set(added)
    for batch in batches:
        offsets = added[batch.partition]
        assert [r[0] for r in batch.rows] == offsets
        assert (batch.first, batch.last) == (offsets[0], offsets[-1])
        assert batch.token == f"t:{batch.partition}:{offsets[0]}-{offsets[-1]}"


def test_due_by_rows_and_by_age() -> None:
    clock = FakeClock()
    batcher = Batcher(max_rows=3, max_ms=1000, clock=clock)
    assert not batcher.due()
    batcher.add("t", 0, 0, ())
    batcher.add("t", 1, 0, ())
    assert not batcher.due()
    batcher.add("t", 0, 1, ())
    assert batcher.due()
    batcher.drain()
    batcher.add("t", 0, 2, ())
    clock.now += 0.999
    assert not batcher.due()
    clock.now += 0.001
    assert batcher.due()


def test_offsets_must_increase() -> None:
    batcher = Batcher(max_rows=10, max_ms=10)
    batcher.add("t", 0, 5, ())
    with pytest.raises(ValueError):
        batcher.add("t", 0, 5, ())


def test_token_names_topic_partition_and_range() -> None:
    assert dedup_token("ns.events", 3, 10, 19) == "ns.events:3:10-19"


def test_first_is_the_oldest_offset_still_batched() -> None:
    batcher = Batcher(max_rows=10, max_ms=10)
    assert batcher.first("t", 0) is None
    batcher.add("t", 0, 7, ())
    batcher.add("t", 0, 9, ())
    assert batcher.first("t", 0) == 7
    batcher.drain()
    assert batcher.first("t", 0) is None


def test_one_block_per_topic_partitions_in_order_token_names_every_range() -> None:
    batcher = Batcher(max_rows=10**9, max_ms=10**9)
    for topic, partition, offset in [
        ("b", 2, 5),
        ("a", 1, 0),
        ("b", 0, 7),
        ("b", 2, 6),
        ("a", 1, 1),
    ]:
        batcher.add(topic, partition, offset, (topic, partition, offset))
    blocks = by_topic(batcher.drain())
    assert [block.topic for block in blocks] == ["a", "b"]
    a, b = blocks
    assert a.rows == [("a", 1, 0), ("a", 1, 1)]
    assert a.token == "a:1:0-1"
    assert b.rows == [("b", 0, 7), ("b", 2, 5), ("b", 2, 6)]
    assert b.token == "b:0:7-7,b:2:5-6"
    assert by_topic([]) == []
