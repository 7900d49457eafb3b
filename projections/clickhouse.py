"""ClickHouse access behind one interface, two backends: embedded chDB or a server over HTTP.

Both are clickhouse-connect clients, so the projector, the migrations and the tests
use the same calls whichever backend `Settings` picks.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import clickhouse_connect
import orjson
from clickhouse_connect.driver.client import Client

from tributary.settings import Settings

# Datetimes arrive as RFC 3339 text from orjson ("2026-11-25T08:58:24.750727+00:00").
_JSON_INPUT = {"date_time_input_format": "best_effort"}


class ClickHouse:
    """A thread-safe wrapper: chDB allows one caller at a time in a process."""

    def __init__(
        self, client: Client, database: str, backend: str, cluster: str | None = None
    ) -> None:
        self._client = client
        self._lock = threading.Lock()
        self.database = database
        self.backend = backend
        # A ClickHouse cluster's name: tables are replicated, read and written through
        # `Distributed` tables (projections/migrations.py). Inserts then reach the shards
        # before they return, so a failed one is retried with its token, never half-queued.
        self.cluster = cluster
        self._placement = {"distributed_foreground_insert": 1} if cluster else {}

    @property
    def client(self) -> Client:
        """The clickhouse-connect client underneath, unlocked: for benchmarks' baselines."""
        return self._client

    def command(self, sql: str) -> Any:
        with self._lock:
            return self._client.command(sql)

    def query(
        self, sql: str, parameters: dict[str, Any] | None = None
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Column names and rows of `sql`."""
        with self._lock:
            result = self._client.query(sql, parameters=parameters)
            return list(result.column_names), [tuple(r) for r in result.result_rows]

    def insert(
        self, table: str, rows: Sequence[Sequence[Any]], columns: Sequence[str], token: str
    ) -> None:
        """Insert `rows` as one block, deduplicated by `token` (a retried insert is a no-op).

        The block travels as JSON columns (`[[col1...], [col2...]]`), serialized by orjson
        in one call and parsed by ClickHouse itself, not column by column in Python:
        chDB parses with the GIL released, so the projector decodes the next batch on the
        other core meanwhile (the Native insert spent ~3 µs a row holding the GIL).
        """
        body = orjson.dumps(list(zip(*rows, strict=True)) if rows else [[] for _ in columns])
        with self._lock:
            self._client.raw_insert(
                f"{self.database}.{table}",
                list(columns),
                body,
                settings={"insert_deduplication_token": token, **_JSON_INPUT, **self._placement},
                fmt="JSONCompactColumns",
            )

    def close(self) -> None:
        with self._lock:
            self._client.close()


def connect(settings: Settings) -> ClickHouse:
    """Open the backend `settings` names and make sure its database exists."""
    cluster = settings.clickhouse_cluster
    if settings.clickhouse_url:
        # A password set apart (or from its file) wins over one written into the URL.
        password = settings.clickhouse_password or ""
        client = clickhouse_connect.get_client(dsn=settings.clickhouse_url, password=password)
        backend = "server"
    elif cluster:
        raise ValueError("TRIBUTARY_CLICKHOUSE_CLUSTER needs a server (TRIBUTARY_CLICKHOUSE_URL)")
    else:
        settings.chdb_path.mkdir(parents=True, exist_ok=True)
        client = clickhouse_connect.get_client(dsn=f"chdb://{settings.chdb_path}")
        backend = "chdb"
    ch = ClickHouse(client, settings.clickhouse_database, backend, cluster)
    on_cluster = f" ON CLUSTER {cluster}" if cluster else ""
    ch.command(f"CREATE DATABASE IF NOT EXISTS {settings.clickhouse_database}{on_cluster}")
    return ch
