"""The executors' effect step: run a decided attempt, then report its result as a record.

The executor's decision (`streams/jobs/executor.py`) is committed before an attempt
gets here. An attempt: take a GPU pool slot (inference), say `active`, call Docker or
Triton (inference through the cross-user batcher) within the job's timeout, say
`progress` as pieces come back, then write `job.result` to the job's own work topic
partition, where the decision step turns it into `completed`, a retry or a dead letter.

`active` and `progress` are at-least-once (ids derived from the attempt, so a second copy
is the same event). The result is sent until the broker has it: a worker that dies
before that leaves the attempt `running` in the table, and the partition's next owner
runs it again (`Executor.resume`), idempotently.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from schemas.editions import editions
from schemas.envelope import CloudEvent, to_kafka
from schemas.headers import TRACEPARENT
from schemas.jobs import ContainerSpec, InferenceSpec, Job, JobKind, JobState, Outcome
from schemas.topics import JOBS
from streams.jobs import emit
from streams.jobs.executor import Executor
from streams.jobs.runners.docker_runner import DockerRunner
from streams.jobs.runners.errors import RunnerError, job_breakers
from streams.jobs.runners.gpu_pool import GpuPool
from streams.jobs.runners.triton_batcher import InferenceBatcher
from streams.metrics import ATTEMPTS_RUNNING
from streams.runtime import state
from streams.runtime.outputs import Effect
from tributary import heartbeats, telemetry
from tributary.breakers import Breakers, OpenedState
from tributary.pause import Pause
from tributary.settings import Settings

log = structlog.get_logger(__name__)

LEASE_MARGIN_MS = 10_000  # a GPU pool slot's lease: the attempt's timeout plus this


def now_ms() -> int:
    return int(time.time() * 1000)


class _WaitedTooLong(Exception):
    """An attempt waited `job_unreachable_wait_s` for its dependency: it is spent."""


class AttemptRunner:
    """The effect step of one executor tier (`streams.runtime.processor.EffectStep`)."""

    def __init__(
        self,
        settings: Settings,
        executor: Executor,
        producer: AIOKafkaProducer,
        docker: DockerRunner,
        inference: InferenceBatcher,
        pool: GpuPool,
        breakers: Breakers | None = None,
    ) -> None:
        self.settings = settings
        self.executor = executor
        self.jobs = JOBS.physical(settings.namespace)
        self._producer = producer
        self._docker = docker
        self._inference = inference
        self._pool = pool
        self._breakers = breakers or job_breakers(settings)
        self._gate = asyncio.Semaphore(settings.executor_concurrency)
        self._running: set[asyncio.Task[None]] = set()

    # -- EffectStep ----------------------------------------------------------------------

    def resume(self, partition: int, tables: state.Tables) -> list[Effect]:
        effects = self.executor.resume(partition, tables)
        if effects:
            log.info("running attempts again after a takeover", partition=partition, n=len(effects))
        return effects

    async def submit(self, effects: list[Effect]) -> None:
        for effect in effects:
            # At the tier's concurrency the loop waits here: going round, not stuck.
            # (The acquire is never cancelled: a cancelled Semaphore.acquire can lose a slot.)
            acquiring = asyncio.ensure_future(self._gate.acquire())
            while not (await asyncio.wait({acquiring}, timeout=5.0))[0]:
                heartbeats.beat(self.executor.name)
            task = asyncio.create_task(self._run(effect), name=f"attempt-{effect.job.job_id}")
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def drain(self, timeout_s: float) -> None:
        """Let running attempts finish and report (SIGTERM); the rest the next owner reruns."""
        if self._running:
            await asyncio.wait(list(self._running), timeout=timeout_s)
        for task in list(self._running):
            task.cancel()

    # -- one attempt -----------------------------------------------------------------------

    async def _run(self, effect: Effect) -> None:
        running = ATTEMPTS_RUNNING.labels(tier=effect.job.priority)
        running.inc()
        origin = [(TRACEPARENT, effect.traceparent)] if effect.traceparent else None
        try:
            with telemetry.span(
                f"{effect.job.kind} attempt", origin, job_id=effect.job.job_id
            ):  # Docker or Triton within the decision's trace; its records continue it
                fields = await self._attempt(effect.job)
                result = emit.attempt_result(effect.job, **fields)
                await self._send(self.executor.source, result, partition=effect.partition)
        except asyncio.CancelledError:
            raise
        except Exception:  # never lose the gate slot; the next owner reruns the attempt
            log.exception("attempt could not report its result", job_id=effect.job.job_id)
        finally:
            running.dec()
            self._gate.release()

    async def _attempt(self, job: Job) -> dict[str, Any]:
        """The side effect within the job's timeout, through its dependency's circuit
        breaker: `AttemptResult`'s fields. While the breaker is open the attempt is parked
        (before it takes a GPU pool slot), not failed, and a dependency that cannot be
        reached does not spend it either, for `job_unreachable_wait_s`: no attempt is
        burned on a dependency that restarts. Past that wait, and on any other error
        (timeouts included), the attempt is spent: a job cannot wait for ever."""
        dependency = "triton" if job.kind is JobKind.INFERENCE else "docker"
        cap_s = self.settings.job_unreachable_wait_s
        active = False
        pause = Pause()
        waiting_since: float | None = None  # since when the attempt waits for its dependency
        last_error = f"{dependency}: circuit open"

        def waited_too_long() -> bool:
            return waiting_since is not None and time.monotonic() - waiting_since >= cap_s

        def going() -> None:  # parked: beat, and count the wait
            nonlocal waiting_since
            heartbeats.beat(self.executor.name)
            waiting_since = waiting_since or time.monotonic()
            if waited_too_long():
                raise _WaitedTooLong

        while True:
            try:
                await self._breakers.parked(dependency, going)
            except _WaitedTooLong:
                error = f"unreachable for {cap_s:g}s: {last_error}"
                return {"error": error, "permanent": False, "at_ms": now_ms()}
            async with self._slot(job):
                if not active:  # once per attempt, however long it waits for the dependency
                    await self._emit(emit.job_event(job, JobState.ACTIVE, now_ms()))
                    active = True
                try:
                    result, outcome = await self._breakers.call(
                        dependency, lambda: asyncio.wait_for(self._side_effect(job), job.timeout_s)
                    )
                    fields: dict[str, Any] = {"outcome": outcome, "result": result}
                except OpenedState:
                    continue  # opened by another attempt's failure meanwhile: park
                except RunnerError as exc:
                    fields = {"error": str(exc), "permanent": exc.permanent}
                    if exc.unreachable:  # the dependency is down: wait, up to `cap_s`
                        waiting_since = waiting_since or time.monotonic()
                        last_error = str(exc)
                        if not waited_too_long():
                            fields = {}
                except TimeoutError:
                    fields = {"error": f"timed out after {job.timeout_s:g}s"}
                except Exception as exc:  # a bug of ours must not kill the step or lose the job
                    log.exception("job attempt crashed", job_id=job.job_id)
                    fields = {"error": f"unexpected error: {exc!r}"}
                if fields:
                    # Stamped inside the slot: the next holder's `active` is never earlier.
                    return {**fields, "at_ms": now_ms()}
            # Unreachable: out of the slot, wait (the breaker opens after `breaker_failures`
            # of these in a row, and then the attempt is parked until a probe succeeds).
            log.warning(
                "dependency unreachable: the attempt waits", of=dependency, job_id=job.job_id
            )
            heartbeats.beat(self.executor.name)
            await pause.wait()

    def _slot(self, job: Job) -> contextlib.AbstractAsyncContextManager[Any]:
        """Inference holds a GPU pool slot; the lease outlives the attempt's timeout."""
        if job.kind is not JobKind.INFERENCE:
            return contextlib.nullcontext()
        reserved = 0 if job.priority == "high" else self.settings.gpu_pool_high_reserved
        limit = max(1, self._pool.slots - reserved)
        lease_ms = int(job.timeout_s * 1000) + LEASE_MARGIN_MS
        return self._pool.slot(lease_ms=lease_ms, limit=limit)

    async def _side_effect(self, job: Job) -> tuple[dict[str, Any], Outcome]:
        if isinstance(job.spec, InferenceSpec):

            async def progress(fraction: float) -> None:
                step = emit.job_event(
                    job, JobState.PROGRESS, now_ms(), f"{fraction:.3f}", progress=fraction
                )
                await self._emit(step)

            embedded = await self._inference.embed(
                job.spec.model, list(job.spec.inputs), job.priority, progress
            )
            return embedded, "completed"
        if isinstance(job.spec, ContainerSpec):
            info = await asyncio.to_thread(self._docker.start, job.user_id, job.spec)
            return info, "running"
        info = await asyncio.to_thread(self._docker.stop, job.spec.container_id)
        return info, "stopped"

    # -- records -----------------------------------------------------------------------

    async def _emit(self, event: CloudEvent) -> None:
        """A step on `jobs.events`, at-least-once, without waiting for the broker."""
        for edition in editions(event):
            key, value, headers = to_kafka(edition)
            await self._producer.send(self.jobs, value, key=key, headers=_traced(headers))

    async def _send(self, topic: str, event: CloudEvent, partition: int) -> None:
        """`event` on `topic`'s `partition`, retried until the broker has it."""
        key, value, plain = to_kafka(event)
        headers = _traced(plain)
        pause = Pause()
        while True:
            try:
                await self._producer.send_and_wait(
                    topic, value, key=key, headers=headers, partition=partition
                )
                return
            except KafkaError as exc:
                log.warning("result not written; retrying", topic=topic, error=repr(exc))
                await pause.wait()


def _traced(headers: Sequence[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """`headers`, with the current span's `traceparent` when tracing is on."""
    if telemetry.enabled and (current := telemetry.traceparent()):
        return telemetry.with_traceparent(list(headers), current)
    return list(headers)
