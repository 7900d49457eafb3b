"""Versioned ClickHouse DDL. Each migration runs once; applied versions live in `_migrations`.

Tables are MergeTree ordered for the analysts' access path (per user, then time),
partitioned by month, and keep a non-replicated deduplication window so that an
insert retried with the same token is dropped by the server.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from projections.clickhouse import ClickHouse

DEDUP_WINDOW = 10_000
# A migration's DDL for (database, cluster or None): statements joined by ";\n".
Ddl = Callable[[str, str | None], str]


def create_table(
    db: str,
    name: str,
    columns: str,
    engine: str,
    order_by: str,
    cluster: str | None,
    *,
    partition_by: str | None = None,
    dedup: bool = False,
    shard_by: str = "rand()",
) -> str:
    """`CREATE TABLE` for one server (or chDB), or, on a named cluster, a replicated table
    `<name>_local` on every node plus a `Distributed` table `<name>` over them, which is
    what everything reads and writes (`shard_by` places a row's shard)."""
    tail = (f" PARTITION BY {partition_by}" if partition_by else "") + f" ORDER BY ({order_by})"
    if cluster is None:
        window = f" SETTINGS non_replicated_deduplication_window = {DEDUP_WINDOW}" if dedup else ""
        return f"CREATE TABLE IF NOT EXISTS {db}.{name} ({columns}) ENGINE = {engine}{tail}{window}"
    local = f"{name}_local"
    window = f" SETTINGS replicated_deduplication_window = {DEDUP_WINDOW}" if dedup else ""
    keeper = f"'/clickhouse/tables/{{shard}}/{db}/{local}', '{{replica}}'"
    return (
        f"CREATE TABLE IF NOT EXISTS {db}.{local} ON CLUSTER {cluster} ({columns}) "
        f"ENGINE = Replicated{engine}({keeper}){tail}{window};\n"
        f"CREATE TABLE IF NOT EXISTS {db}.{name} ON CLUSTER {cluster} AS {db}.{local} "
        f"ENGINE = Distributed({cluster}, {db}, {local}, {shard_by})"
    )


def _projected_table(db: str, name: str, columns: str, order_by: str, cluster: str | None) -> str:
    """A table the projector writes: `columns`, then where each row came from in Kafka
    (the projector resumes from max(_offset)), monthly parts, and the dedup window (a
    retried insert with the same token is dropped). On a cluster, a user's rows share a
    shard."""
    return create_table(
        db,
        name,
        f"{columns} _topic LowCardinality(String), _partition UInt16, _offset UInt64,"
        " _inserted DateTime64(3, 'UTC') DEFAULT now64(3)",
        "MergeTree",
        order_by,
        cluster,
        partition_by="toYYYYMM(time)",
        dedup=True,
        shard_by="cityHash64(user_id)",
    )


def _event_table(name: str, extra_columns: str = "") -> Ddl:
    """A table of CloudEvents: their attributes, `data` as JSON, then `extra_columns`."""

    def ddl(db: str, cluster: str | None) -> str:
        columns = (
            "event_id String, user_id String, type LowCardinality(String),"
            " source LowCardinality(String), time DateTime64(3, 'UTC'), data String,"
            f" {extra_columns}"
        )
        return _projected_table(db, name, columns, "user_id, time, event_id", cluster)

    return ddl


@dataclass(frozen=True)
class Rollup:
    """A table kept by a materialized view over `source`; rebuilt with it on replays."""

    name: str
    source: str
    columns: str
    order_by: str
    select: str  # `{db}` and `{source}` are filled in
    engine: str = "SummingMergeTree"

    def select_from(self, db: str, source: str) -> str:
        return self.select.format(db=db, source=source)

    def table_ddl(self, db: str, cluster: str | None) -> str:
        return create_table(db, self.name, self.columns, self.engine, self.order_by, cluster)

    def view_ddl(self, db: str, cluster: str | None) -> str:
        """The view that keeps the rollup; on a cluster, one per node, from its share of
        the source into its share of the rollup."""
        if cluster is None:
            return (
                f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{self.name}_mv "
                f"TO {db}.{self.name} AS {self.select_from(db, self.source)}"
            )
        return (
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{self.name}_mv ON CLUSTER {cluster} "
            f"TO {db}.{self.name}_local AS {self.select_from(db, f'{self.source}_local')}"
        )


def _dead_letters_table(db: str, cluster: str | None) -> str:
    # The DLQ keeps records that may not be CloudEvents: its own columns, time is when
    # the record was dead-lettered; ordered for "what failed lately, and why".
    columns = (
        "event_id String, user_id String, type LowCardinality(String),"
        " time DateTime64(3, 'UTC'), reason LowCardinality(String), error String,"
        " origin_topic LowCardinality(String), origin_partition UInt16, origin_offset UInt64,"
        " value String, headers String,"
    )
    return _projected_table(db, "dead_letters", columns, "time, reason, user_id", cluster)


EVENTS_PER_USER_MINUTE = Rollup(
    name="events_per_user_minute",
    source="events_ingest",
    columns="user_id String, minute DateTime('UTC'), type LowCardinality(String), events UInt64",
    order_by="user_id, minute, type",
    select=(
        "SELECT user_id, toStartOfMinute(time) AS minute, type, count() AS events "
        "FROM {db}.{source} GROUP BY user_id, minute, type"
    ),
)
# Query with quantilesMerge(0.5, 0.9, 0.99)(latency) and countMerge(jobs), grouped again.
INFERENCE_LATENCY_PER_MINUTE = Rollup(
    name="inference_latency_per_minute",
    source="jobs_events",
    columns=(
        "minute DateTime('UTC'), kind LowCardinality(String),"
        " latency AggregateFunction(quantiles(0.5, 0.9, 0.99), Int64),"
        " jobs AggregateFunction(count)"
    ),
    order_by="minute, kind",
    select=(
        "SELECT toStartOfMinute(time) AS minute, kind,"
        " quantilesState(0.5, 0.9, 0.99)(latency_ms) AS latency, countState() AS jobs"
        " FROM {db}.{source} WHERE state = 'completed' GROUP BY minute, kind"
    ),
    engine="AggregatingMergeTree",
)
# Per container: first `running` and last `stopped` (query with minMerge/maxMerge).
CONTAINER_UPTIME = Rollup(
    name="container_uptime",
    source="containers_events",
    columns=(
        "user_id String, container_id String,"
        " started AggregateFunction(minIf, DateTime64(3, 'UTC'), UInt8),"
        " stopped AggregateFunction(maxIf, DateTime64(3, 'UTC'), UInt8)"
    ),
    order_by="user_id, container_id",
    select=(
        "SELECT user_id, container_id,"
        " minIfState(time, state = 'running') AS started,"
        " maxIfState(time, state = 'stopped') AS stopped"
        " FROM {db}.{source} GROUP BY user_id, container_id"
    ),
    engine="AggregatingMergeTree",
)
ROLLUPS: tuple[Rollup, ...] = (
    EVENTS_PER_USER_MINUTE,
    INFERENCE_LATENCY_PER_MINUTE,
    CONTAINER_UPTIME,
)


def rollups_of(table: str) -> list[Rollup]:
    return [r for r in ROLLUPS if r.source == table]


def _rollup(rollup: Rollup) -> Ddl:
    # One migration may need several statements; they are joined and split on ";\n".
    return lambda db, cluster: f"{rollup.table_ddl(db, cluster)};\n{rollup.view_ddl(db, cluster)}"


# (version, description, DDL for database `db` on cluster `cluster` or one server).
# Append only; never edit a shipped one.
MIGRATIONS: tuple[tuple[int, str, Ddl], ...] = (
    (1, "events_ingest table", _event_table("events_ingest")),
    (2, "events_counted table", _event_table("events_counted", "seq UInt64, source_id String,")),
    (3, "events per user per minute rollup", _rollup(EVENTS_PER_USER_MINUTE)),
    (4, "commands table", _event_table("commands")),
    (
        5,
        "jobs_events table",
        _event_table(
            "jobs_events",
            "job_id String, kind LowCardinality(String), state LowCardinality(String),"
            " attempt UInt16, latency_ms Int64, reason String,",
        ),
    ),
    (
        6,
        "containers_events table",
        _event_table("containers_events", "container_id String, state LowCardinality(String),"),
    ),
    (
        7,
        "commands_rejected table",
        _event_table(
            "commands_rejected",
            "command_id String, command_type LowCardinality(String),"
            " reason LowCardinality(String),",
        ),
    ),
    (8, "inference latency per minute rollup", _rollup(INFERENCE_LATENCY_PER_MINUTE)),
    (9, "container uptime rollup", _rollup(CONTAINER_UPTIME)),
    (10, "dead_letters table", _dead_letters_table),
    (
        11,
        "containers_events: why a container ended and its exit code",
        lambda db, cluster: _add_columns(
            db,
            "containers_events",
            "reason LowCardinality(String) DEFAULT '', exit_code Nullable(Int32)",
            cluster,
        ),
    ),
    (
        12,
        "desktop_sessions table",
        _event_table(
            "desktop_sessions",
            "container_id String, session_id String, role LowCardinality(String),"
            " joined DateTime64(3, 'UTC'), left DateTime64(3, 'UTC'), duration_ms Int64,"
            " bytes_to_viewer UInt64, bytes_from_viewer UInt64, close_reason String,",
        ),
    ),
)


def _add_columns(db: str, table: str, columns: str, cluster: str | None) -> str:
    """`ALTER TABLE ... ADD COLUMN` for one server, or for a cluster's shards and the
    distributed table over them."""
    adds = ", ".join(f"ADD COLUMN IF NOT EXISTS {c.strip()}" for c in columns.split(", "))
    if cluster is None:
        return f"ALTER TABLE {db}.{table} {adds}"
    return (
        f"ALTER TABLE {db}.{table}_local ON CLUSTER {cluster} {adds};\n"
        f"ALTER TABLE {db}.{table} ON CLUSTER {cluster} {adds}"
    )


def migrations_table(db: str, cluster: str | None) -> str:
    """Which migrations ran; on a cluster, one replicated table every node shares."""
    columns = "version UInt32, description String, applied DateTime DEFAULT now()"
    if cluster is None:
        return (
            f"CREATE TABLE IF NOT EXISTS {db}._migrations ({columns}) "
            "ENGINE = MergeTree ORDER BY version"
        )
    keeper = f"'/clickhouse/tables/all/{db}/_migrations', '{{replica}}'"
    return (
        f"CREATE TABLE IF NOT EXISTS {db}._migrations ON CLUSTER {cluster} ({columns}) "
        f"ENGINE = ReplicatedMergeTree({keeper}) ORDER BY version"
    )


def migrate(ch: ClickHouse) -> list[int]:
    """Apply every migration not yet applied; return the versions applied now."""
    db = ch.database
    ch.command(migrations_table(db, ch.cluster))
    _, rows = ch.query(f"SELECT version FROM {db}._migrations")
    done = {r[0] for r in rows}
    applied = []
    for version, description, ddl in MIGRATIONS:
        if version in done:
            continue
        for statement in ddl(db, ch.cluster).split(";\n"):
            ch.command(statement)
        ch.insert(
            "_migrations",
            [(version, description)],
            ("version", "description"),
            token=f"migration-{version}",
        )
        applied.append(version)
    return applied
