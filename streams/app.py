"""The stream worker: one Faust app hosting the executors, plus the transactional loops.

Data flow in a worker:
- `events.ingest` → counter loop → `events.counted` (exactly once, `streams.transactional`)
- `commands` → command loop → `jobs.events`, `commands.rejected`, work tiers, retry
  (exactly once, `streams.transactional`)
- work tiers → executor agents (Faust) → Docker / Triton → `jobs.events`, `commands`
  (at-least-once, idempotent by attempt)
- `work.retry` → retry scheduler → its target topic (at-least-once)
"""

from __future__ import annotations

import asyncio
from typing import Any

import faust

from schemas import tables
from schemas.topics import MAX_RECORD_BYTES
from streams import health
from streams.agents import executor
from streams.agents.commands import Commands
from streams.agents.counter import Counter
from streams.retry_scheduler import RetryScheduler
from streams.transactional import TransactionalLoop
from tributary.settings import Settings

# How long a stopping worker lets its loops finish the batch in hand and leave the group.
STOP_GRACE_S = 20.0


def create_app(settings: Settings) -> faust.App:
    """A Faust app for `settings` with every agent, loop and task installed."""
    datadir = (settings.data_dir / "streams" / settings.worker_name).resolve()
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        tables.app_id(settings.namespace),
        broker=";".join(f"kafka://{host}" for host in settings.kafka_hosts),
        store="rocksdb://",
        datadir=str(datadir),
        processing_guarantee=settings.processing_guarantee,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        # Faust declares only what it owns (changelogs); sources come from the registry.
        topic_allow_declare=True,
        web_enabled=True,
        # Faust binds `web_bind` (0.0.0.0 unless told) and only names `web_host` in URLs.
        web_bind=settings.worker_web_host,
        web_host=settings.worker_web_host,
        web_port=settings.worker_web_port,
        web_in_thread=False,
        table_standby_replicas=settings.table_standby_replicas,
        broker_session_timeout=settings.worker_session_timeout_s,
        broker_heartbeat_interval=max(1.0, settings.worker_session_timeout_s / 4),
        broker_commit_interval=settings.worker_commit_interval_s,
        producer_max_request_size=MAX_RECORD_BYTES,
    )
    loops = [
        TransactionalLoop(settings, Counter(settings)),
        TransactionalLoop(settings, Commands(settings)),
    ]
    health.install(app, settings.stall_after_s, loops, settings.live_max_rss_mb)
    executor.install(app, settings)
    stop = asyncio.Event()
    running: list[asyncio.Task[None]] = []

    def runner(loop: TransactionalLoop) -> Any:
        async def run_loop() -> None:
            task = asyncio.current_task()
            assert task is not None
            running.append(task)
            await loop.run(stop)

        return run_loop

    for loop in loops:
        app.task(runner(loop))

    @app.on_before_shutdown.connect  # type: ignore[arg-type]  # async receivers are awaited
    async def stop_loops(sender: Any, **kwargs: Any) -> None:
        # Before Faust cancels its tasks: finish the batch in hand, leave the groups.
        stop.set()
        if running:
            await asyncio.wait(running, timeout=STOP_GRACE_S)

    @app.task
    async def retry_scheduler() -> None:
        # Runs beside the agents in every worker; its consumer group shares the partitions.
        await RetryScheduler(settings).run(asyncio.Event())

    return app
