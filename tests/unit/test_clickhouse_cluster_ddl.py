"""Migrations on a ClickHouse cluster (DDL only: no ClickHouse server runs here)."""

from __future__ import annotations

import re

from projections.analyst_queries import analyst_access
from projections.migrations import EVENTS_PER_USER_MINUTE, MIGRATIONS, migrations_table
from tributary.settings import Settings


def statements(version: int, cluster: str | None) -> list[str]:
    ddl = next(d for v, _, d in MIGRATIONS if v == version)
    return ddl("tributary", cluster).split(";\n")


def test_one_server_keeps_plain_merge_trees() -> None:
    [table] = statements(2, None)
    assert "CREATE TABLE IF NOT EXISTS tributary.events_counted (" in table
    assert (
        "ENGINE = MergeTree PARTITION BY toYYYYMM(time) ORDER BY (user_id, time, event_id)" in table
    )
    assert "non_replicated_deduplication_window = 10000" in table
    assert "ON CLUSTER" not in table and "Replicated" not in table


def test_a_cluster_gets_replicated_shards_behind_a_distributed_table() -> None:
    local, distributed = statements(2, "events")
    assert local.startswith(
        "CREATE TABLE IF NOT EXISTS tributary.events_counted_local ON CLUSTER events ("
    )
    assert (
        "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/tributary/events_counted_local',"
        " '{replica}') PARTITION BY toYYYYMM(time) ORDER BY (user_id, time, event_id)"
    ) in local
    # A retried insert (same dedup token) is dropped by the replicas too.
    assert local.endswith("SETTINGS replicated_deduplication_window = 10000")
    assert distributed == (
        "CREATE TABLE IF NOT EXISTS tributary.events_counted ON CLUSTER events AS"
        " tributary.events_counted_local"
        " ENGINE = Distributed(events, tributary, events_counted_local, cityHash64(user_id))"
    )


def test_rollups_are_kept_per_shard_and_read_through_a_distributed_table() -> None:
    local, distributed, view = statements(3, "events")
    keeper = "'/clickhouse/tables/{shard}/tributary/events_per_user_minute_local'"
    assert f"ENGINE = ReplicatedSummingMergeTree({keeper}, '{{replica}}')" in local
    assert "Distributed(events, tributary, events_per_user_minute_local, rand())" in distributed
    assert view.startswith(
        "CREATE MATERIALIZED VIEW IF NOT EXISTS tributary.events_per_user_minute_mv ON CLUSTER"
        " events TO tributary.events_per_user_minute_local AS SELECT"
    )
    assert "FROM tributary.events_ingest_local GROUP BY" in view
    assert EVENTS_PER_USER_MINUTE.view_ddl("tributary", None).endswith(
        "FROM tributary.events_ingest GROUP BY user_id, minute, type"
    )


def test_every_migration_has_its_cluster_form() -> None:
    for version, _, ddl in MIGRATIONS:
        for statement in ddl("tributary", "events").split(";\n"):
            assert " ON CLUSTER events " in statement, version
            if re.match(r"CREATE TABLE IF NOT EXISTS \S+_local ON CLUSTER", statement):
                assert "ENGINE = Replicated" in statement, version
            elif statement.startswith("CREATE TABLE"):
                assert "ENGINE = Distributed(events, tributary, " in statement, version
    assert "ReplicatedMergeTree('/clickhouse/tables/all/tributary/_migrations'" in migrations_table(
        "tributary", "events"
    )


def test_the_analyst_user_is_made_on_every_node() -> None:
    settings = Settings(clickhouse_analyst_password="pw", clickhouse_cluster="events")
    for statement in analyst_access(settings):
        assert "ON CLUSTER events" in statement
