"""Records → ClickHouse rows (pure): the dead-letter mapping and the skip rule."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import NamedTuple

import pytest

from projections.tables import UNREADABLE, for_topic


class Record(NamedTuple):
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


def test_a_dead_letter_keeps_reason_origin_and_the_raw_bytes() -> None:
    record = Record(
        "ns.dlq",
        2,
        41,
        1_700_000_000_123,
        b"user-7",
        b"\xff not json",
        [
            ("ce_id", b"e-1"),
            ("x-tributary-reason", b"invalid_envelope"),
            ("x-tributary-error", b"no ce_subject"),
            ("x-tributary-origin", b"ns.events.ingest:3:99"),
        ],
    )
    projection = for_topic("dlq")
    row = dict(zip(projection.columns, projection.row(record) or (), strict=True))
    assert row["event_id"] == "e-1"
    assert row["user_id"] == "user-7"  # no ce_subject: the record key says whose it was
    assert row["time"] == datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)
    assert (row["reason"], row["error"]) == ("invalid_envelope", "no ce_subject")
    assert (row["origin_topic"], row["origin_partition"], row["origin_offset"]) == (
        "ns.events.ingest",
        3,
        99,
    )
    assert row["value"] == "\ufffd not json"
    assert (row["_topic"], row["_partition"], row["_offset"]) == ("ns.dlq", 2, 41)


def test_a_dead_letter_without_our_headers_still_makes_a_row() -> None:
    record = Record("ns.dlq", 0, 0, 0, None, None, [])
    projection = for_topic("dlq")
    row = dict(zip(projection.columns, projection.row(record) or (), strict=True))
    assert (row["reason"], row["origin_topic"], row["value"]) == ("?", "", "")


def test_an_event_topic_refuses_a_record_that_is_not_a_cloudevent() -> None:
    record = Record("ns.events.ingest", 0, 0, 0, b"k", b"{}", [("ce_id", b"x")])
    with pytest.raises(UNREADABLE):
        for_topic("events.ingest").row(record)


CE_HEADERS = [
    ("ce_id", b"e-9"),
    ("ce_source", b"src"),
    ("ce_type", b"t.x"),
    ("ce_subject", b"u-3"),
    ("ce_time", b"2026-11-25T08:58:24.750727+00:00"),
]


def test_an_event_row_keeps_the_records_own_json_text_as_data() -> None:
    record = Record("ns.events.ingest", 4, 17, 0, b"u-3", b'{"b": 1,  "a": [2]}', CE_HEADERS)
    projection = for_topic("events.ingest")
    row = dict(zip(projection.columns, projection.row(record) or (), strict=True))
    assert row["data"] == '{"b": 1,  "a": [2]}'  # as written, not re-serialized
    assert (row["event_id"], row["user_id"], row["type"], row["source"]) == (
        "e-9",
        "u-3",
        "t.x",
        "src",
    )
    assert row["time"] == datetime(2026, 11, 25, 8, 58, 24, 750727, tzinfo=UTC)
    assert (row["_topic"], row["_partition"], row["_offset"]) == ("ns.events.ingest", 4, 17)


@pytest.mark.parametrize("value", [b"[1, 2]", b"not json", b'"text"', b"\xff"])
def test_an_event_whose_value_is_not_a_json_object_is_unreadable(value: bytes) -> None:
    record = Record("ns.events.ingest", 0, 0, 0, b"k", value, CE_HEADERS)
    with pytest.raises(UNREADABLE):
        for_topic("events.ingest").row(record)


def test_a_letter_keeps_its_origin_and_an_older_executor_letter_its_topic() -> None:
    from schemas.dead_letters import DeadLetter, Origin, origin_topic

    letter = DeadLetter.of(
        "timed_out", "x" * 5000, Origin(topic="ns.work.normal", partition=2, offset=7)
    )
    headers = letter.headers([("ce_id", b"j"), ("x-tributary-reason", b"old")])
    assert DeadLetter.from_headers(headers) == letter and len(letter.error) == 2000
    assert dict(headers)["x-tributary-origin"] == b"ns.work.normal:2:7"
    assert origin_topic(headers) == "ns.work.normal"
    legacy = [("x-tributary-origin", b"ns.work.high:job:6d9a3925-d9ca")]
    assert DeadLetter.from_headers(legacy) is None and origin_topic(legacy) == "ns.work.high"
    assert origin_topic([("x-tributary-origin", b"nonsense")]) is None
