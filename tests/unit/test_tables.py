"""The changelog topics we create ahead of the workers are exactly the ones Faust uses."""

from __future__ import annotations

from pathlib import Path

from streams.app import create_app
from streams.tables import changelog_topics
from tributary.settings import Settings


def test_every_table_changelog_is_in_the_list_and_nothing_else(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, namespace="unit")
    app = create_app(settings)
    faust_names = {table.changelog_topic.get_topic_name() for table in app.tables.values()}
    assert faust_names == set(changelog_topics("unit", settings.dedup_ttl_s))
