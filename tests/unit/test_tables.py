"""The changelog topics we create ahead of the workers are exactly the ones the worker uses:
the transactional loops' (Faust keeps no table any more)."""

from __future__ import annotations

from pathlib import Path

from schemas.tables import changelog_topics
from streams.app import create_app
from streams.events.counter import EventCounter
from streams.jobs.commands import Commands
from streams.jobs.executor import Executor
from streams.runtime.transactional import TransactionalLoop
from tributary.settings import Settings


def test_every_table_changelog_is_in_the_list_and_nothing_else(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, namespace="unit")
    app = create_app(settings)
    faust_names = {table.changelog_topic.get_topic_name() for table in app.tables.values()}
    loop_names = {
        topic
        for processor in (
            EventCounter(settings),
            Commands(settings),
            Executor(settings, "high"),
            Executor(settings, "normal"),
        )
        for topic in TransactionalLoop(settings, processor).changelogs.values()
    }
    assert faust_names == set()
    assert loop_names == set(changelog_topics("unit", settings.dedup_ttl_s))
