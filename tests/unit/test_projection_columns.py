"""The projector's rows and the tables the migrations make agree, column for column.

Column names live in two places on purpose: `projections/tables.py` says what a row holds
now, and `projections/migrations.py` is append-only history (a shipped migration is never
edited; a new column is a new `ALTER`). This test replays every migration's DDL and checks
that each projection writes exactly its table's columns (inserts name them, so order is
free; `_inserted` is filled by its default), so the two cannot drift.
"""

from __future__ import annotations

import re

from projections.migrations import MIGRATIONS
from projections.tables import PROJECTIONS

DB = "db"
FILLED_BY_DEFAULT = {"_inserted"}


def split_top_level(text: str) -> list[str]:
    """`text` split on the commas outside parentheses and quotes."""
    parts, depth, quoted, start = [], 0, False, 0
    for i, c in enumerate(text):
        if c == "'":
            quoted = not quoted
        elif not quoted and c == "(":
            depth += 1
        elif not quoted and c == ")":
            depth -= 1
        elif not quoted and c == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def enclosed(text: str) -> str:
    """`text` up to the parenthesis that closes one opened just before it."""
    depth = 1
    for i, c in enumerate(text):
        depth += {"(": 1, ")": -1}.get(c, 0)
        if depth == 0:
            return text[:i]
    raise ValueError(f"unbalanced: {text[:60]}")


def schema() -> dict[str, list[str]]:
    """Each table's column names after every migration (one server)."""
    tables: dict[str, list[str]] = {}
    for _, _, ddl in MIGRATIONS:
        for statement in ddl(DB, None).split(";\n"):
            if created := re.match(rf"CREATE TABLE IF NOT EXISTS {DB}\.(\w+) \(", statement):
                columns = split_top_level(enclosed(statement[created.end() :]))
                tables[created.group(1)] = [c.split()[0] for c in columns]
            elif altered := re.match(rf"ALTER TABLE {DB}\.(\w+) ", statement):
                added = re.findall(r"ADD COLUMN IF NOT EXISTS (\w+)", statement)
                tables[altered.group(1)] += added
    return tables


def test_every_projection_writes_exactly_its_tables_columns() -> None:
    tables = schema()
    for projection in PROJECTIONS:
        assert projection.table in tables, f"no migration makes {projection.table}"
        assert len(set(projection.columns)) == len(projection.columns), projection.table
        made = set(tables[projection.table]) - FILLED_BY_DEFAULT
        assert set(projection.columns) == made, projection.table


def test_the_check_can_fail() -> None:
    """A column added by an ALTER shows up, and the parser keeps types with commas whole."""
    tables = schema()
    assert tables["containers_events"][-2:] == ["reason", "exit_code"]
    assert split_top_level("a DateTime64(3, 'UTC'), b String") == [
        "a DateTime64(3, 'UTC')",
        "b String",
    ]
