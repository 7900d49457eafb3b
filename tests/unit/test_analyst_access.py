"""The read-only ClickHouse user analyst queries run as on a server (DDL only: no server here)."""

from __future__ import annotations

import pytest

from projections.analyst_queries import analyst_access
from tributary.settings import Settings


def test_the_analyst_user_reads_only_the_database_with_limits_it_cannot_change() -> None:
    settings = Settings(
        clickhouse_database="tributary",
        clickhouse_analyst_password="it's a \\\\ secret",
        query_max_execution_s=7,
        query_max_memory_mb=512,
    )
    profile, user, grant = analyst_access(settings)
    assert profile.startswith("CREATE SETTINGS PROFILE OR REPLACE tributary_analyst SETTINGS ")
    for limit in (
        "max_execution_time = 7.0 CONST",
        f"max_memory_usage = {512 * 1024 * 1024} CONST",
        "max_result_rows = 100000 CONST",
        "max_threads = 1 CONST",
        "result_overflow_mode = 'throw' CONST",
    ):
        assert limit in profile, limit
    assert profile.endswith("readonly = 1")
    assert "BY 'it\\'s a \\\\\\\\ secret'" in user  # quotes and backslashes escaped
    assert "DEFAULT DATABASE tributary SETTINGS PROFILE 'tributary_analyst'" in user
    assert grant == "GRANT SELECT ON tributary.* TO tributary_analyst"


def test_a_server_without_the_analyst_password_is_refused() -> None:
    with pytest.raises(ValueError, match="TRIBUTARY_CLICKHOUSE_ANALYST_PASSWORD"):
        analyst_access(Settings(clickhouse_url="http://clickhouse:8123"))
