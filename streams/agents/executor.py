"""The executors: accepted jobs → side effects (Docker, Triton) → job and container events.

One agent per priority tier, each with its own consumer capacity, so a backlog of
normal jobs never delays high ones. Per job attempt: `active`, then `progress` steps,
then `completed`; or `failed` followed by `retrying` (onto the retry topic, due after
backoff with jitter) or `dead_lettered` (onto the DLQ with the job, the error and
every attempt). Finished jobs (any outcome) are reported back on `commands`, where
the command agent releases their quota. An inference attempt first takes a slot of
its GPU pool (`streams/gpu_pool.py`, shared by all workers); normal-priority jobs
leave `gpu_pool_high_reserved` slots to high ones.

Side effects are at-least-once made idempotent (container names derive from the
command id; an embedding is the same when computed twice). The `attempts` table
remembers the last attempt started per job, so a redelivered work record for an
attempt that already ran is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import faust
import structlog

from schemas import contracts, tables
from schemas import headers as h
from schemas.dead_letters import DeadLetter as Letter
from schemas.dead_letters import Origin
from schemas.envelope import to_kafka
from schemas.jobs import (
    ContainerSpec,
    ContainerStatus,
    InferenceSpec,
    Job,
    JobKind,
    JobState,
    Outcome,
)
from schemas.topics import COMMANDS, CONTAINERS, DLQ, JOBS, RETRY, WORK_TIERS
from streams import emit
from streams.dlq import dead_letter, origin_of
from streams.gpu_pool import GpuPool
from streams.lifecycle import Backoff, DeadLetter, after_failure
from streams.metrics import EVENTS_PROCESSED
from streams.runners.docker_runner import DockerRunner
from streams.runners.errors import RunnerError
from streams.runners.triton_runner import TritonRunner
from streams.topics import raw_topic, send_event
from tributary import redis_client
from tributary.settings import Settings

log = structlog.get_logger(__name__)

LEASE_MARGIN_MS = 10_000  # a slot's lease: the attempt's timeout plus this


def now_ms() -> int:
    return int(time.time() * 1000)


def install(app: faust.App, settings: Settings) -> None:
    ns = settings.namespace
    commands = raw_topic(app, COMMANDS, ns)
    jobs = raw_topic(app, JOBS, ns)
    containers = raw_topic(app, CONTAINERS, ns)
    retry = raw_topic(app, RETRY, ns)
    dlq = raw_topic(app, DLQ, ns)
    attempts = app.Table(
        tables.JOB_ATTEMPTS, default=int, partitions=settings.partitions, key_type=str
    )
    backoff = Backoff(settings.retry_base_ms, settings.retry_cap_ms)
    docker_runner = DockerRunner(settings.docker_dsn, ns)
    triton = TritonRunner(settings.triton_url)

    pool = GpuPool(redis_client.connect(settings), ns, settings.gpu_pool, settings.gpu_pool_slots)

    def slot_for(job: Job) -> contextlib.AbstractAsyncContextManager[Any]:
        """Inference holds a GPU pool slot; the lease outlives the attempt's timeout."""
        if job.kind is not JobKind.INFERENCE:
            return contextlib.nullcontext()
        reserved = 0 if job.priority == "high" else settings.gpu_pool_high_reserved
        limit = max(1, pool.slots - reserved)
        return pool.slot(lease_ms=int(job.timeout_s * 1000) + LEASE_MARGIN_MS, limit=limit)

    async def run(job: Job) -> tuple[Any, Outcome]:
        """The side effect; returns (result, outcome reported to the command agent)."""
        if isinstance(job.spec, InferenceSpec):
            spec = job.spec

            async def progress(fraction: float) -> None:
                await send_event(
                    jobs,
                    emit.job_event(
                        job, JobState.PROGRESS, now_ms(), f"{fraction:.3f}", progress=fraction
                    ),
                )

            return await triton.embed(spec.model, list(spec.inputs), progress), "completed"
        container_id = job.spec.container_id
        if isinstance(job.spec, ContainerSpec):
            info = await asyncio.to_thread(docker_runner.start, job.user_id, job.spec)
            await send_event(
                containers,
                emit.container_event(
                    job,
                    container_id,
                    ContainerStatus.RUNNING,
                    now_ms(),
                    image=job.spec.image,
                    engine_id=info["engine_id"],
                    name=info["name"],
                ),
            )
            return info, "running"
        info = await asyncio.to_thread(docker_runner.stop, container_id)
        stopped = emit.container_event(job, container_id, ContainerStatus.STOPPED, now_ms())
        await send_event(containers, stopped)
        return info, "stopped"

    async def fail(job: Job, origin: Origin, error: str, permanent: bool) -> None:
        at = now_ms()
        await send_event(
            jobs, emit.job_event(job, JobState.FAILED, at, reason=error, permanent=permanent)
        )
        step = after_failure(job, error, permanent, at, backoff)
        if isinstance(step, DeadLetter):
            dead = step.job
            # "<why dead>: <last error>", so GET /v1/jobs says what actually went wrong.
            reason = f"{step.reason}: {error}"
            await send_event(jobs, emit.job_event(dead, JobState.DEAD_LETTERED, at, reason=reason))
            # The dead job as a work record, at the work record's position: `tributary dlq
            # retry` sends it back there.
            key, value, headers = to_kafka(emit.work(dead, at))
            letter = Letter.of(step.reason, error, origin)
            await dlq.send(key=key, value=value, headers=letter.headers(headers))
            await send_event(commands, emit.job_finished(job, "dead_lettered", at))
            EVENTS_PROCESSED.labels(agent="executor", outcome="dead_lettered").inc()
            return
        await send_event(
            jobs,
            emit.job_event(step.job, JobState.RETRYING, at, due_ms=step.due_ms, reason=error),
        )
        schedule = {h.DUE_MS: str(step.due_ms), h.TARGET: WORK_TIERS[job.priority].physical(ns)}
        await send_event(retry, emit.work(step.job, at), schedule)
        EVENTS_PROCESSED.labels(agent="executor", outcome="retrying").inc()

    async def attempt(job: Job, origin: Origin) -> None:
        """One attempt: `active`, the side effect, then `completed` or a failure step."""
        await send_event(jobs, emit.job_event(job, JobState.ACTIVE, now_ms()))
        try:
            result, outcome = await asyncio.wait_for(run(job), job.timeout_s)
        except RunnerError as exc:
            await fail(job, origin, str(exc), exc.permanent)
            return
        except TimeoutError:
            await fail(job, origin, f"timed out after {job.timeout_s:g}s", False)
            return
        except Exception as exc:  # a bug of ours must not kill the agent or lose the job
            log.exception("job attempt crashed", job_id=job.job_id)
            await fail(job, origin, f"unexpected error: {exc!r}", False)
            return
        at = now_ms()
        await send_event(jobs, emit.job_event(job, JobState.COMPLETED, at, result=result))
        await send_event(commands, emit.job_finished(job, outcome, at))
        EVENTS_PROCESSED.labels(agent="executor", outcome="completed").inc()

    async def execute(stream: faust.StreamT) -> None:
        async for event in stream.events():
            if contracts.superseded(list(dict(event.headers or {}).items())):
                continue  # an older version's copy of the job: its current one is beside it
            try:
                job = Job.model_validate_json(event.value)
            except ValueError as exc:
                await dead_letter(dlq, event, reason="invalid_job", error=str(exc))
                continue
            done = attempts[job.job_id]
            if h.RETRIED_FROM in dict(event.headers or {}):
                # Retried from the DLQ by an operator: a fresh set of attempts.
                job = job.model_copy(
                    update={"attempt": done + 1, "max_attempts": done + job.max_attempts}
                )
            elif done >= job.attempt:
                EVENTS_PROCESSED.labels(agent="executor", outcome="duplicate").inc()
                continue
            attempts[job.job_id] = job.attempt
            # `active` to `completed`/`failed` inside the slot: never more at once than slots.
            async with slot_for(job):
                await attempt(job, origin_of(event))

    for tier, spec in WORK_TIERS.items():
        app.agent(
            raw_topic(app, spec, ns),
            name=f"executor-{tier}",
            concurrency=settings.executor_concurrency,
        )(execute)
