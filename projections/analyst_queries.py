"""Analyst queries: run apart from ingestion, read-only, inside ClickHouse's own limits.

Each query runs on a ClickHouse session of its own (a second chDB handle on the same
engine, or the read-only `tributary_analyst` user of a server), never under the lock the
projector's inserts take, so a long query does not hold ingestion back. The session has
`readonly=1` (set last, so the query cannot change it or any other setting) and the limits
of `Settings.query_*`: `max_execution_time`, `max_memory_usage`, `max_result_rows`,
`max_result_bytes`, `max_threads`. What the query may touch is checked first on
ClickHouse's own parse of it (`query_rules`). At most `query_concurrency` run at once.
"""

from __future__ import annotations

import queue
from dataclasses import dataclass, field
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from projections.clickhouse import ClickHouse
from projections.query_rules import (
    Refusal,
    check_ast,
    check_sources,
    limit_hit,
    names_in_ast,
    sources_in_query_tree,
    wrapped,
)
from tributary.settings import Settings

ANALYST_USER = "tributary_analyst"


@dataclass
class QueryError(Exception):
    """A query that did not run or was cut: the HTTP status and a machine-readable body."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)
    # ClickHouse failed the call: a chDB session whose result stream broke off (a limit
    # hit mid-stream) hands its leftovers to the next query, so it is not used again.
    spoiled: bool = False


def session_settings(settings: Settings) -> dict[str, Any]:
    """The limits every analyst query runs under; `readonly` comes last, as once it is set
    the session can change nothing more."""
    return {
        "max_execution_time": settings.query_max_execution_s,
        "max_memory_usage": settings.query_max_memory_mb * 1024 * 1024,
        "max_result_rows": settings.query_max_result_rows,
        "max_result_bytes": settings.query_max_result_mb * 1024 * 1024,
        "result_overflow_mode": "throw",
        "max_threads": settings.query_max_threads,
        "readonly": 1,
    }


def analyst_access(settings: Settings) -> list[str]:
    """With a ClickHouse server: the read-only user analyst queries run as, its limits in a
    settings profile its queries cannot change (`CONST`, and `readonly = 1`), and SELECT on
    the Tributary database only. Made again at every start, so changed limits apply."""
    password = settings.clickhouse_analyst_password
    if not password:
        raise ValueError(
            "TRIBUTARY_CLICKHOUSE_ANALYST_PASSWORD is required with a ClickHouse server: "
            "analyst queries run as a read-only user of their own"
        )
    db = settings.clickhouse_database
    limits = ", ".join(
        f"{name} = {value!r} CONST" if isinstance(value, str) else f"{name} = {value} CONST"
        for name, value in session_settings(settings).items()
        if name != "readonly"
    )
    quoted = password.replace("\\", "\\\\").replace("'", "\\'")
    on = f" ON CLUSTER {settings.clickhouse_cluster}" if settings.clickhouse_cluster else ""
    return [
        f"CREATE SETTINGS PROFILE OR REPLACE {ANALYST_USER}{on} SETTINGS {limits}, readonly = 1",
        f"CREATE USER OR REPLACE {ANALYST_USER}{on} IDENTIFIED WITH sha256_password BY "
        f"'{quoted}' DEFAULT DATABASE {db} SETTINGS PROFILE '{ANALYST_USER}'",
        f"GRANT{on} SELECT ON {db}.* TO {ANALYST_USER}",
    ]


def connect_analyst(settings: Settings) -> Client:
    database = settings.clickhouse_database
    if settings.clickhouse_url:
        # A server: the user the migrations made holds the same limits in its profile.
        return clickhouse_connect.get_client(
            dsn=settings.clickhouse_url,
            username=ANALYST_USER,
            password=settings.clickhouse_analyst_password or "",
            database=database,
        )
    client = clickhouse_connect.get_client(dsn=f"chdb://{settings.chdb_path}", database=database)
    for name, value in session_settings(settings).items():
        client.set_client_setting(name, value)
    return client


class AnalystQueries:
    """A pool of `query_concurrency` read-only sessions; `run` blocks (call it in a thread).

    `ch`, the projector's own connection, says which databases and table functions the
    server has: the analyst user may not see them all (system tables need grants)."""

    def __init__(self, settings: Settings, ch: ClickHouse) -> None:
        self._settings = settings
        self.database = settings.clickhouse_database
        self.concurrency = settings.query_concurrency
        # A slot is None after its session broke and could not be opened again: the next
        # query on it opens one.
        self._sessions: queue.SimpleQueue[Client | None] = queue.SimpleQueue()
        for _ in range(self.concurrency):
            self._sessions.put(connect_analyst(settings))
        _, databases = ch.query("SELECT name FROM system.databases")
        _, functions = ch.query("SELECT name FROM system.table_functions")
        self.databases = frozenset(str(row[0]) for row in databases)
        self.table_functions = frozenset(str(row[0]).lower() for row in functions)

    def run(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Column names and rows of `sql`, or `QueryError` (400, 403, 422)."""
        client = self._sessions.get()
        try:
            if client is None:
                client = connect_analyst(self._settings)
            return self._run(client, sql)
        except QueryError as exc:
            if exc.spoiled and client is not None:
                client.close()
                client = None  # opened again by the next query on this slot
            raise
        finally:
            self._sessions.put(client)

    def _run(self, client: Client, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        canonical = _ask(client, "SELECT formatQuerySingleLine({sql:String})", {"sql": sql})
        form = wrapped(canonical[0])
        try:
            ast = _ask(client, f"EXPLAIN AST {form}")
        except QueryError as exc:
            raise _refused(
                Refusal(
                    "not_a_select",
                    "one SELECT query only (WITH and UNION allowed; no INTO OUTFILE, FORMAT, "
                    "INSERT, DDL or SHOW)",
                )
            ) from exc
        functions, names = names_in_ast(ast)
        refusal = check_ast(functions, names, self.database, self.databases, self.table_functions)
        if refusal:
            raise _refused(refusal)
        tables, table_functions = sources_in_query_tree(_ask(client, f"EXPLAIN QUERY TREE {form}"))
        if refusal := check_sources(tables, table_functions, self.database):
            raise _refused(refusal)
        try:
            result = client.query(form)
        except Exception as exc:  # ClickHouse's errors are one type with a code in the text
            error = _failed(exc)
            error.spoiled = True  # a stream cut mid-way leaves bytes for the next query
            raise error from exc
        return list(result.column_names), [tuple(r) for r in result.result_rows]

    def close(self) -> None:
        for _ in range(self.concurrency):
            if (client := self._sessions.get()) is not None:
                client.close()


def _ask(client: Client, sql: str, parameters: dict[str, Any] | None = None) -> list[str]:
    """The first column of `sql`'s rows, as text."""
    try:
        return [str(row[0]) for row in client.query(sql, parameters=parameters).result_rows]
    except Exception as exc:
        raise _failed(exc) from exc


def _refused(refusal: Refusal) -> QueryError:
    return QueryError(
        403, {"error": "query_refused", "reason": refusal.reason, "message": refusal.message}
    )


def _failed(exc: Exception) -> QueryError:
    message = str(exc)[:2000]
    if limit := limit_hit(message):
        clickhouse_name, setting = limit
        return QueryError(
            422,
            {
                "error": "query_limit",
                "limit": clickhouse_name,
                "setting": setting,
                "message": message,
            },
        )
    if "(READONLY)" in message:
        return _refused(Refusal("read_only", message))
    return QueryError(400, {"error": "query_failed", "message": message})
