"""The stream worker: the transactional loops, their effect steps, the engine watch.

Data flow in a worker:
- `events.ingest` → counter loop → `events.counted` (exactly once, `streams.runtime.transactional`)
- `commands` → command loop → `jobs.events`, `containers.events`, `commands.rejected`,
  work tiers, retry (exactly once)
- work tiers → executor loops (decide, exactly once) → attempt runners (Docker, Triton via
  the cross-user batcher; at-least-once, idempotent) → `job.result` on the work tier →
  executor loops → `jobs.events`, `commands`, retry, DLQ (exactly once)
- the Docker engine → engine watch and reconcile → `commands` (at-least-once, ids derived)
- `work.retry` → retry scheduler → its target topic (at-least-once)

Faust hosts the web server (health, metrics) and the tasks; it runs no agent.
"""

from __future__ import annotations

import asyncio

import faust

from schemas import tables
from schemas.topics import MAX_RECORD_BYTES, WORK_TIERS
from streams import health
from streams.events.counter import EventCounter
from streams.jobs.commands import Commands
from streams.jobs.executor import Executor
from streams.jobs.retry_scheduler import RetryScheduler
from streams.jobs.runners.attempts import AttemptRunner
from streams.jobs.runners.docker_runner import DockerRunner
from streams.jobs.runners.engine_watch import EngineWatch
from streams.jobs.runners.errors import job_breakers
from streams.jobs.runners.gpu_pool import GpuPool
from streams.jobs.runners.triton_batcher import InferenceBatcher
from streams.jobs.runners.triton_runner import TritonRunner
from streams.runtime.transactional import TransactionalLoop
from tributary import kafka_clients, redis_client
from tributary.settings import Settings

# How long a stopping worker lets its loops finish the batch in hand and leave the group.
STOP_GRACE_S = 20.0


class Lifecycle:
    """The worker's drain, run at SIGTERM before Faust stops (streams/worker.py): readiness
    goes false, every loop ends at a batch boundary (its transaction committed, its
    partitions released), the retry scheduler stops, the attempt runners drain."""

    def __init__(self) -> None:
        self.draining = False
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    def track(self) -> None:
        """Called by each long task of the worker, from inside it."""
        task = asyncio.current_task()
        assert task is not None
        self.tasks.append(task)  # type: ignore[arg-type]

    async def drain(self, grace_s: float) -> bool:
        """True when every task ended within `grace_s`."""
        self.draining = True
        self.stop.set()
        if not self.tasks:
            return True
        _, pending = await asyncio.wait(self.tasks, timeout=grace_s)
        return not pending


def create_app(settings: Settings, lifecycle: Lifecycle | None = None) -> faust.App:
    """A Faust app for `settings` with every agent, loop and task installed; `lifecycle`
    drains them (a new one if not given)."""
    lifecycle = lifecycle or Lifecycle()
    datadir = (settings.data_dir / "streams" / settings.worker_name).resolve()
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        tables.app_id(settings.namespace),
        broker=";".join(f"kafka://{host}" for host in settings.kafka_hosts),
        store="rocksdb://",
        datadir=str(datadir),
        # Faust runs no agent: every loop keeps its own transactions. (Faust's exactly_once
        # with no agent of its own crashes on its first assignment.)
        processing_guarantee="at_least_once",
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
        producer_max_request_size=MAX_RECORD_BYTES,
    )
    executors = [TransactionalLoop(settings, Executor(settings, tier)) for tier in WORK_TIERS]
    loops = [
        TransactionalLoop(settings, EventCounter(settings)),
        TransactionalLoop(settings, Commands(settings)),
        *executors,
    ]
    breakers = job_breakers(settings)
    health.install(app, settings, loops, lambda: lifecycle.draining, breakers.open)
    stop = lifecycle.stop
    drains: list[AttemptRunner] = []

    @app.task
    async def run_loops() -> None:
        lifecycle.track()
        producer = kafka_clients.producer(settings.kafka_bootstrap)
        await producer.start()
        redis = redis_client.connect(settings)
        await redis_client.initialize(redis)
        docker = DockerRunner(settings.docker_dsn, settings.namespace)
        batcher = InferenceBatcher(
            TritonRunner(settings.triton_url),
            window_s=settings.inference_batch_window_ms / 1000,
            max_batch=settings.inference_max_batch,
            in_flight=settings.inference_requests_in_flight,
            piece=settings.inference_piece,
        )
        pool = GpuPool(redis, settings.namespace, settings.gpu_pool, settings.gpu_pool_slots)
        for loop in executors:
            assert isinstance(loop.processor, Executor)
            runner = AttemptRunner(
                settings, loop.processor, producer, docker, batcher, pool, breakers
            )
            loop.effects = runner
            drains.append(runner)
        watch = EngineWatch(settings, producer)
        try:
            await asyncio.gather(*(loop.run(stop) for loop in loops), watch.run(stop))
        finally:
            for runner in drains:
                await runner.drain(timeout_s=5.0)
            await batcher.close()
            await producer.stop()
            await redis.aclose()

    @app.task
    async def retry_scheduler() -> None:
        # Runs beside the agents in every worker; its consumer group shares the partitions.
        lifecycle.track()
        await RetryScheduler(settings).run(stop)

    return app
