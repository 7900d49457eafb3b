"""`ClickHouse.insert` against real chDB: what goes in comes back, and a token is a token."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from projections.clickhouse import ClickHouse
from projections.tables import COMMON_COLUMNS
from tributary.settings import Settings

pytestmark = pytest.mark.integration

AWKWARD = 'quote " backslash \\ newline \n tab \t unicode é🙂 nul \x00 end'


@pytest.fixture
def ch(chdb: tuple[Settings, ClickHouse]) -> ClickHouse:
    return chdb[1]


def row(offset: int, text: str = "plain") -> tuple[object, ...]:
    at = datetime(2026, 11, 25, 8, 58, 24, 750727, tzinfo=UTC)
    return (f"e{offset}", "u1", "t.x", text, at, '{"k": "v"}', "ns.topic", 65535, offset)


def read(ch: ClickHouse) -> list[tuple[object, ...]]:
    columns = ", ".join(COMMON_COLUMNS)
    return ch.query(f"SELECT {columns} FROM {ch.database}.events_ingest ORDER BY _offset")[1]


def test_values_round_trip_exactly(ch: ClickHouse) -> None:
    rows = [row(0, AWKWARD), row(2**64 - 1)]
    ch.insert("events_ingest", rows, COMMON_COLUMNS, "tok-1")
    back = read(ch)
    assert [r[3] for r in back] == [AWKWARD, "plain"]
    assert [r[8] for r in back] == [0, 2**64 - 1]
    assert back[0][7] == 65535
    # DateTime64(3, 'UTC'): the instant, to the millisecond, in UTC.
    assert isinstance(back[0][4], datetime)
    assert back[0][4].replace(tzinfo=UTC) == datetime(2026, 11, 25, 8, 58, 24, 750000, tzinfo=UTC)
    assert back[0][5] == '{"k": "v"}'


def test_the_same_token_inserts_once_and_empty_blocks_are_fine(ch: ClickHouse) -> None:
    ch.insert("events_ingest", [row(1), row(2)], COMMON_COLUMNS, "tok-a")
    ch.insert("events_ingest", [row(1), row(2)], COMMON_COLUMNS, "tok-a")  # a retry
    ch.insert("events_ingest", [], COMMON_COLUMNS, "tok-empty")
    assert len(read(ch)) == 2
    ch.insert("events_ingest", [row(3)], COMMON_COLUMNS, "tok-b")
    assert [r[8] for r in read(ch)] == [1, 2, 3]
