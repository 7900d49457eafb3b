"""Versioned ClickHouse DDL. Each migration runs once; applied versions live in `_migrations`.

Tables are MergeTree ordered for the analysts' access path (per user, then time),
partitioned by month, and keep a non-replicated deduplication window so that an
insert retried with the same token is dropped by the server.
"""

from __future__ import annotations

from collections.abc import Callable

from projections.clickhouse import ClickHouse

DEDUP_WINDOW = 10_000


def _event_table(name: str, extra_columns: str = "") -> Callable[[str], str]:
    def ddl(db: str) -> str:
        return f"""
        CREATE TABLE IF NOT EXISTS {db}.{name} (
            event_id String,
            user_id String,
            type LowCardinality(String),
            source LowCardinality(String),
            time DateTime64(3, 'UTC'),
            data String,
            {extra_columns}
            _topic LowCardinality(String),
            _partition UInt16,
            _offset UInt64,
            _inserted DateTime64(3, 'UTC') DEFAULT now64(3)
        )
        ENGINE = MergeTree
        PARTITION BY toYYYYMM(time)
        ORDER BY (user_id, time, event_id)
        SETTINGS non_replicated_deduplication_window = {DEDUP_WINDOW}
        """

    return ddl


# (version, description, DDL for database `db`). Append only; never edit a shipped one.
MIGRATIONS: tuple[tuple[int, str, Callable[[str], str]], ...] = (
    (1, "events_ingest table", _event_table("events_ingest")),
    (2, "events_counted table", _event_table("events_counted", "seq UInt64, source_id String,")),
)


def migrate(ch: ClickHouse) -> list[int]:
    """Apply every migration not yet applied; return the versions applied now."""
    db = ch.database
    ch.command(
        f"CREATE TABLE IF NOT EXISTS {db}._migrations "
        "(version UInt32, description String, applied DateTime DEFAULT now()) "
        "ENGINE = MergeTree ORDER BY version"
    )
    _, rows = ch.query(f"SELECT version FROM {db}._migrations")
    done = {r[0] for r in rows}
    applied = []
    for version, description, ddl in MIGRATIONS:
        if version in done:
            continue
        ch.command(ddl(db))
        ch.insert(
            "_migrations",
            [(version, description)],
            ("version", "description"),
            token=f"migration-{version}",
        )
        applied.append(version)
    return applied
