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
    row = dict(zip(projection.columns, projection.row(record), strict=True))
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
    row = dict(zip(projection.columns, projection.row(record), strict=True))
    assert (row["reason"], row["origin_topic"], row["value"]) == ("?", "", "")


def test_an_event_topic_refuses_a_record_that_is_not_a_cloudevent() -> None:
    record = Record("ns.events.ingest", 0, 0, 0, b"k", b"{}", [("ce_id", b"x")])
    with pytest.raises(UNREADABLE):
        for_topic("events.ingest").row(record)
