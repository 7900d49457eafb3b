"""The command agent: the single writer of each user's job and container state.

`commands` (keyed by user) → dedup → authoritative limits in event time (pure
`streams.admission`) → `jobs.events` (queued / rejected), `commands.rejected`, and the
accepted job on its priority tier's work topic, or on the retry topic while a
debounce delay runs. Executors report back on `commands` (`job.finished`), so quota
releases are ordered with the requests in one log and a replay decides the same.
Under `exactly_once` the table writes, the outputs and the input offset are one
Kafka transaction.
"""

from __future__ import annotations

from typing import Any

import faust
import structlog
from pydantic import ValidationError

from schemas.envelope import CloudEvent, EnvelopeError, from_kafka
from schemas.jobs import (
    CONTAINER_START,
    CONTAINER_STOP,
    INFERENCE_REQUESTED,
    JOB_FINISHED,
    ContainerIn,
    InferenceIn,
    Job,
    JobKind,
    JobState,
)
from schemas.topics import COMMANDS, DLQ, JOBS, REJECTED, RETRY, WORK_TIERS
from streams import admission, emit, tables
from streams.admission import Quotas, UserState, Verdict
from streams.dedup import already_seen, seen_table
from streams.dlq import dead_letter
from streams.metrics import EVENTS_PROCESSED
from streams.retry_scheduler import DUE_HEADER, TARGET_HEADER
from streams.topics import raw_topic, send_event
from tributary.limits import parse_windows
from tributary.settings import Settings

log = structlog.get_logger(__name__)

JOB_DUE = "job.due"  # a debounced job whose delay is over, back from the retry topic


def quotas(settings: Settings) -> Quotas:
    return Quotas(
        windows=parse_windows(settings.command_rate_limits),
        max_in_flight_jobs=settings.max_in_flight_jobs,
        max_running_containers=settings.max_running_containers,
    )


def install(app: faust.App, settings: Settings) -> None:
    ns = settings.namespace
    commands = raw_topic(app, COMMANDS, ns)
    jobs = raw_topic(app, JOBS, ns)
    rejected = raw_topic(app, REJECTED, ns)
    retry = raw_topic(app, RETRY, ns)
    dlq = raw_topic(app, DLQ, ns)
    tiers = {name: raw_topic(app, spec, ns) for name, spec in WORK_TIERS.items()}
    users = app.Table(
        tables.USER_STATE,
        default=dict,
        partitions=settings.partitions,
        key_type=str,  # values: UserState as JSON (the app's default value serializer)
    )
    ttl = settings.dedup_ttl_s
    seen = seen_table(app, tables.SEEN_COMMANDS, settings.partitions, ttl)
    rules = quotas(settings)

    async def enqueue(job: Job, at_ms: int, delay_ms: int = 0) -> None:
        await send_event(jobs, emit.job_event(job, JobState.QUEUED, at_ms))
        value = job.model_dump_json().encode()
        if delay_ms:
            # The retry scheduler hands it back on `commands` when due (debounce).
            await retry.send(
                key=job.user_id.encode(),
                value=value,
                headers=[
                    (DUE_HEADER, str(at_ms + delay_ms).encode()),
                    (TARGET_HEADER, COMMANDS.physical(ns).encode()),
                    ("ce_type", JOB_DUE.encode()),
                ],
            )
        else:
            await tiers[job.priority].send(key=job.user_id.encode(), value=value)

    async def refuse(command: CloudEvent, job: Job | None, verdict: Verdict, at_ms: int) -> None:
        reason = verdict.reason or "refused"
        await send_event(rejected, emit.rejected(command, reason, at_ms, verdict.retry_after_ms))
        if job is not None:
            await send_event(jobs, emit.job_event(job, JobState.REJECTED, at_ms, reason=reason))

    async def decide(command: CloudEvent, state: UserState, at_ms: int) -> None:
        user = command.subject
        if command.type == INFERENCE_REQUESTED:
            spec = InferenceIn.model_validate(command.data)
            job = Job(
                job_id=command.id,
                user_id=user,
                kind=JobKind.INFERENCE,
                priority=spec.priority,
                max_attempts=spec.max_attempts,
                timeout_s=spec.timeout_s,
                accepted_ms=at_ms,
                spec=spec.model_dump(include={"model", "inputs", "debounce_key"}),
            )
            verdict = admission.admit_inference(state, rules, job.job_id, at_ms)
            if not verdict.accepted:
                await refuse(command, job, verdict, at_ms)
                return
            replaced = admission.debounce(state, spec.debounce_key, job.job_id)
            if replaced is not None:
                admission.finished(state, replaced, None, "replaced")
                gone = job.model_copy(update={"job_id": replaced})
                await send_event(
                    jobs, emit.job_event(gone, JobState.REJECTED, at_ms, reason="debounced")
                )
            await enqueue(job, at_ms, spec.debounce_ms if spec.debounce_key else 0)
        elif command.type == CONTAINER_START:
            container = ContainerIn.model_validate(command.data)
            job = Job(
                job_id=command.id,
                user_id=user,
                kind=JobKind.CONTAINER_START,
                priority=container.priority,
                accepted_ms=at_ms,
                timeout_s=60,
                spec={**container.model_dump(), "container_id": command.id},
            )
            verdict = admission.admit_container(state, rules, command.id, at_ms)
            if not verdict.accepted:
                await refuse(command, job, verdict, at_ms)
                return
            await enqueue(job, at_ms)
        elif command.type == CONTAINER_STOP:
            container_id = str(command.data.get("container_id", ""))
            job = Job(
                job_id=command.id,
                user_id=user,
                kind=JobKind.CONTAINER_STOP,
                priority="high",
                accepted_ms=at_ms,
                timeout_s=60,
                spec={"container_id": container_id},
            )
            verdict = admission.stop_container(state, container_id)
            if not verdict.accepted:
                await refuse(command, job, verdict, at_ms)
                return
            await enqueue(job, at_ms)
        elif command.type == JOB_FINISHED:
            data: dict[str, Any] = command.data
            admission.finished(
                state, str(data["job_id"]), data.get("container_id"), str(data["outcome"])
            )
        else:
            raise ValueError(f"unknown command type {command.type!r}")

    async def due(event: faust.EventT) -> None:
        """A debounced job's delay is over: run it if no later request replaced it."""
        try:
            job = Job.model_validate_json(event.value)
        except ValidationError as exc:  # only our scheduler writes these; never stop on one
            await dead_letter(dlq, event, reason="invalid_job", error=str(exc))
            EVENTS_PROCESSED.labels(agent="commands", outcome="dead_lettered").inc()
            return
        state = UserState.from_json(users[job.user_id])
        if admission.is_latest(state, _debounce_key(job), job.job_id):
            await tiers[job.priority].send(key=job.user_id.encode(), value=event.value)
        users[job.user_id] = state.to_json()

    async def handle(stream: faust.StreamT) -> None:
        async for event in stream.events():
            at_ms = int(event.message.timestamp * 1000)
            headers = dict(event.headers or {})
            if headers.get("ce_type") == JOB_DUE.encode():
                await due(event)
                continue
            try:
                command = from_kafka(event.value, event.headers)
                seen_key = f"{command.subject}/{command.id}"
                if already_seen(seen, seen_key, ttl):
                    EVENTS_PROCESSED.labels(agent="commands", outcome="duplicate").inc()
                    continue
                state = UserState.from_json(users[command.subject])
                await decide(command, state, at_ms)
            except (EnvelopeError, ValidationError, ValueError, KeyError) as exc:
                await dead_letter(dlq, event, reason="invalid_command", error=str(exc))
                EVENTS_PROCESSED.labels(agent="commands", outcome="dead_lettered").inc()
                continue
            users[command.subject] = state.to_json()
            seen[seen_key] = 1
            EVENTS_PROCESSED.labels(agent="commands", outcome="decided").inc()

    app.agent(commands, name="commands")(handle)


def _debounce_key(job: Job) -> str | None:
    return job.spec.get("debounce_key")
