"""The Faust application: one app, many small agents, configured from `Settings`."""

from __future__ import annotations

import asyncio

import faust

from streams import health, tables
from streams.agents import commands, counter, executor
from streams.retry_scheduler import RetryScheduler
from tributary.settings import Settings


def create_app(settings: Settings) -> faust.App:
    """A Faust app for `settings` with every agent installed."""
    datadir = (settings.data_dir / "streams" / settings.worker_name).resolve()
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        tables.app_id(settings.namespace),
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="rocksdb://",
        datadir=str(datadir),
        processing_guarantee=settings.processing_guarantee,
        topic_partitions=settings.partitions,
        # Faust declares only what it owns (changelogs); sources come from the registry.
        topic_allow_declare=True,
        web_enabled=True,
        web_host="127.0.0.1",
        web_port=settings.worker_web_port,
        web_in_thread=False,
        table_standby_replicas=settings.table_standby_replicas,
        broker_session_timeout=settings.worker_session_timeout_s,
        broker_heartbeat_interval=max(1.0, settings.worker_session_timeout_s / 4),
        # With exactly-once an agent's output is visible (read_committed) only once its
        # transaction commits: this interval is added to every hop's latency.
        broker_commit_interval=settings.worker_commit_interval_s,
    )
    health.install(app, settings.stall_after_s)
    counter.install(app, settings)
    commands.install(app, settings)
    executor.install(app, settings)

    @app.task
    async def retry_scheduler() -> None:
        # Runs beside the agents in every worker; its consumer group shares the partitions.
        await RetryScheduler(settings).run(asyncio.Event())

    return app
