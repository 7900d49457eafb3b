"""The resume rules of `WS /v1/ws` (gateway/resume.py), case by case and by property."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.resume import cursor_recovered, events_gap, fill_verdict
from gateway.routes.push import PushQuery


def msgs(*seqs: int) -> list[tuple[int, bytes]]:
    return [(s, str(s).encode()) for s in seqs]


def test_no_gap_when_redis_holds_the_next_seq() -> None:
    assert events_gap(5, exists=True, first_seq=6) is None
    assert events_gap(5, exists=True, first_seq=1) is None
    assert events_gap(5, exists=True, first_seq=9) == (5, 9)
    assert events_gap(5, exists=False, first_seq=None) == (5, None)


def test_a_complete_fill_recovers() -> None:
    verdict = fill_verdict(5, 9, msgs(6, 7, 8))
    assert verdict.recovered and verdict.earliest == 6
    assert [s for s, _ in verdict.send] == [6, 7, 8]


def test_a_fill_that_starts_late_or_has_a_hole_says_so() -> None:
    late = fill_verdict(5, 9, msgs(7, 8))
    assert not late.recovered and late.earliest == 7
    holed = fill_verdict(5, 10, msgs(6, 7, 9))
    assert not holed.recovered and holed.earliest == 9 and [s for s, _ in holed.send] == [9]
    detached = fill_verdict(5, 10, msgs(6, 7))  # 8 and 9 nowhere: nothing papered over
    assert not detached.recovered and detached.earliest == 10 and detached.send == []


def test_nothing_anywhere_and_clickhouse_down() -> None:
    assert fill_verdict(5, None, []).recovered  # no stream, no rows: nothing happened
    assert not fill_verdict(5, 9, []).recovered
    down = fill_verdict(5, 9, None)
    assert not down.recovered and down.earliest == 9


def test_cursors() -> None:
    assert cursor_recovered((5, 0), exists=True, max_deleted=(4, 0))
    assert not cursor_recovered((3, 0), exists=True, max_deleted=(4, 0))
    assert cursor_recovered((0, 0), exists=False, max_deleted=(0, 0))
    assert not cursor_recovered((7, 1), exists=False, max_deleted=(0, 0))


@given(
    since=st.integers(0, 50),
    before=st.integers(1, 80),
    held=st.sets(st.integers(1, 80)),
)
def test_what_is_sent_is_an_unbroken_run_up_to_redis(
    since: int, before: int, held: set[int]
) -> None:
    verdict = fill_verdict(since, before, msgs(*sorted(held)))
    sent = [s for s, _ in verdict.send]
    assert sent == list(range(sent[0], before)) if sent else True
    assert all(since < s < before for s in sent)
    # Recovered exactly when every seq between `since` and Redis's first is there.
    assert verdict.recovered == (before <= since + 1 or set(range(since + 1, before)) <= held)
    if not verdict.recovered:
        assert verdict.earliest == (sent[0] if sent else before)


def test_bad_parameters_are_refused_by_the_query_model() -> None:
    import pytest
    from pydantic import ValidationError

    for bad in (
        {"since": "abc"},
        {"since": "99999999999999999999999"},
        {"since": "-1"},
        {"channel": "bogus"},
        {"cursor": "x;y"},
        {"id": "../etc"},
    ):
        with pytest.raises(ValidationError):
            PushQuery.model_validate(bad)
    assert PushQuery.model_validate({"since": "7", "api_key": "k"}).since == 7
