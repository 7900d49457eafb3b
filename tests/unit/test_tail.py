"""`tributary tail`'s pure parts: where to start, what to show, how."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tributary.tail import Record, as_json, parse_since, pretty, select

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
RECORD = Record(
    "ns.jobs.events",
    3,
    41,
    1_796_000_000_000,
    b"alice",
    b'{"job_id": "j"}',
    (("ce_type", b"job.queued"), ("ce_subject", b"alice"), ("ce_id", b"e1"), ("traceparent", b"t")),
)


def test_since_takes_relative_and_absolute_times() -> None:
    assert parse_since("10m", NOW) == NOW - timedelta(minutes=10)
    assert parse_since("2h", NOW) == NOW - timedelta(hours=2)
    assert parse_since("2026-12-01T00:00:00", NOW) == datetime(2026, 12, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="expected 30s"):
        parse_since("yesterday", NOW)


def test_select_by_user_and_type_glob() -> None:
    assert select(RECORD, "alice", "job.*") and select(RECORD, None, None)
    assert not select(RECORD, "bob", None) and not select(RECORD, None, "container.*")


def test_json_has_the_attributes_the_data_and_other_headers_apart() -> None:
    shown = as_json(RECORD)
    assert (shown["type"], shown["id"], shown["data"]) == ("job.queued", "e1", {"job_id": "j"})
    assert shown["headers"] == {"traceparent": "t"} and shown["offset"] == 41


def test_pretty_names_position_user_type_and_id() -> None:
    head, body = pretty(RECORD).splitlines()
    assert head.startswith("ns.jobs.events[3]@41 ") and "alice job.queued id=e1" in head
    assert body == '  {"job_id":"j"}'
