"""The status projector: job and container events → Redis hashes the gateway reads.

`GET /v1/jobs/{id}` and `GET /v1/containers/{id}` answer from here, never from a
gateway's memory. A command on `commands` writes `submitted` only where no state is
yet known (the decision may already have been projected from `jobs.events`); every
later event overwrites in its partition's order. At-least-once from Kafka: a batch
read again after a crash is applied again in the same order, ending in the same state.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog
from pydantic import ValidationError
from redis.exceptions import RedisError

from projections.consumers import redis_projector_consumer
from projections.metrics import JOB_SECONDS
from projections.push_notices import notify
from schemas import contracts, keys
from schemas.envelope import EnvelopeError, EventView, from_kafka_lenient
from schemas.groups import PROJECTOR_STATUS
from schemas.jobs import (
    CONTAINER_DISPLAY_READY,
    CONTAINER_EVENT_TYPES,
    CONTAINER_START,
    INFERENCE_REQUESTED,
    JOB_STEP_TYPES,
    ContainerEvent,
    ContainerIn,
    DisplayReady,
    JobKind,
    JobState,
    JobStep,
)
from schemas.push import JOBS_STREAM_MAXLEN, STREAM_FIELD, job_payload
from schemas.status import ENDED, ContainerState, ContainerStatusHash, JobStatus
from tributary import heartbeats, redis_client, telemetry
from tributary.kafka_clients import commit_or_log
from tributary.pause import Pause
from tributary.settings import Settings

log = structlog.get_logger(__name__)

STATUS_TTL_S = 7 * 24 * 60 * 60


@dataclass(frozen=True)
class Update:
    key: str
    fields: dict[str, str]
    only_if_new: bool = False
    push: bytes | None = None  # also appended to `key` as a stream entry (job steps)
    expires: bool = True  # False: a live container's hash, kept until it ends


def updates(namespace: str, event: EventView) -> list[Update]:
    """What one event changes in Redis (pure); raises `ValidationError` on a bad `data`."""
    if not contracts.is_current(event.dataschema):
        return []  # a copy in an older version of its type: the current one is applied
    at = int(event.time.timestamp() * 1000)
    if event.type == INFERENCE_REQUESTED:
        return [_submitted(namespace, event, JobKind.INFERENCE, at)]
    if event.type == CONTAINER_START:
        request = ContainerIn.model_validate(event.data)
        fields = ContainerStatusHash(
            user=event.subject,
            state=ContainerState.REQUESTED,
            image=request.image,
            job_id=event.id,
            updated_ms=at,
        ).fields()
        return [
            _submitted(namespace, event, JobKind.CONTAINER_START, at),
            Update(keys.container(namespace, event.id), fields, only_if_new=True, expires=False),
        ]
    if event.type in JOB_STEP_TYPES:
        return _job_step(namespace, event, JobStep.model_validate(event.data))
    if event.type == CONTAINER_DISPLAY_READY:
        ready = DisplayReady.model_validate(event.data)
        fields = ContainerStatusHash(
            user=event.subject,
            address=ready.address,
            display=f"{ready.width}x{ready.height}",
            updated_ms=at,
        ).fields()
        key = keys.container(namespace, ready.container_id)
        return [Update(key, fields, expires=False), _room(namespace, event, ready.container_id)]
    if event.type in CONTAINER_EVENT_TYPES:
        container = ContainerEvent.model_validate(event.data)
        state = ContainerState(container.state)
        fields = ContainerStatusHash(
            user=event.subject,
            state=state,
            image=container.image,
            updated_ms=at,
            reason=container.reason,
            exit_code=container.exit_code,
        ).fields()
        key = keys.container(namespace, container.container_id)
        return [
            Update(key, fields, expires=state in ENDED),
            _room(namespace, event, container.container_id),
        ]
    # job.finished (the executor's report to the command agent: the job's own steps say
    # it), container.stop (its job's steps say it), anything else: nothing to show.
    return []


def _room(namespace: str, event: EventView, container_id: str) -> Update:
    """The event, pushed to its container's room (`WS /v1/ws?channel=container&id=...`)."""
    data = dict(event.data) if isinstance(event.data, dict) else {}
    data.pop("address", None)  # the relay's business, not a viewer's
    payload = job_payload(event.id, event.type, event.time.isoformat(), data)
    return Update(keys.container_stream(namespace, container_id), {}, push=payload)


def _submitted(namespace: str, event: EventView, kind: JobKind, at: int) -> Update:
    status = JobStatus(user=event.subject, kind=kind, state=JobState.SUBMITTED, updated_ms=at)
    return Update(keys.job(namespace, event.id), status.fields(), only_if_new=True)


def _job_step(namespace: str, event: EventView, step: JobStep) -> list[Update]:
    completed = step.state is JobState.COMPLETED
    status = JobStatus(
        user=event.subject,
        kind=step.kind,
        state=step.state,
        attempts=step.attempt,
        updated_ms=step.at_ms,
        progress=1.0 if completed else step.progress,
        result=JobStatus.result_text(step.result) if completed else None,
        failure_reason=step.reason,
    )
    data = step.model_dump(mode="json", exclude_none=True)
    out = [
        Update(keys.job(namespace, step.job_id), status.fields()),
        # Pushed to the user's WebSocket (channel=jobs); ids are derived, so a client
        # drops a step it has seen when a re-read batch pushes it again.
        Update(
            keys.jobs_stream(namespace, event.subject),
            {},
            push=job_payload(event.id, event.type, event.time.isoformat(), data),
        ),
    ]
    if step.kind is JobKind.CONTAINER_START and step.state in (
        JobState.REJECTED,
        JobState.DEAD_LETTERED,
    ):
        failed = ContainerStatusHash(
            state=ContainerState.FAILED, reason=step.reason or "", updated_ms=step.at_ms
        )
        out.append(Update(keys.container(namespace, step.job_id), failed.fields()))
    return out


ENDS = {JobState.COMPLETED, JobState.DEAD_LETTERED, JobState.REJECTED}


def observe_job_end(event: EventView) -> None:
    """A job's last step: its time from acceptance (`tributary_job_seconds`)."""
    if event.type not in JOB_STEP_TYPES or not contracts.is_current(event.dataschema):
        return
    step = JobStep.model_validate(event.data)
    if step.state in ENDS:
        seconds = max(0, step.at_ms - step.accepted_ms) / 1000
        JOB_SECONDS.labels(kind=str(step.kind), outcome=str(step.state)).observe(seconds)


class StatusProjector:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.redis = redis_client.connect(settings)
        self.consumer = redis_projector_consumer(settings, PROJECTOR_STATUS)

    async def run(self, stop: asyncio.Event) -> None:
        try:
            # Inside the try: a start that fails half-way is stopped, and Redis closed, too.
            await self.consumer.start()
            await redis_client.initialize(self.redis)
            while not stop.is_set():
                heartbeats.beat("status")
                batch = await self.consumer.getmany(timeout_ms=100, max_records=2000)
                if not batch:
                    continue
                pending: list[Update] = []
                for records in batch.values():
                    for msg in records:
                        try:
                            event = from_kafka_lenient(msg.value, msg.headers)
                            if telemetry.enabled:
                                with telemetry.span(f"status {event.type}", msg.headers):
                                    pass
                            pending.extend(updates(self.settings.namespace, event))
                            observe_job_end(event)
                        except (EnvelopeError, ValidationError, KeyError, ValueError) as exc:
                            log.warning("no status in record", offset=msg.offset, error=str(exc))
                await self._apply(pending)
                await commit_or_log(self.consumer, group="projector-status")
        finally:
            heartbeats.forget("status")
            await self.consumer.stop()
            await self.redis.aclose()

    async def _apply(self, pending: list[Update]) -> None:
        pause = Pause()
        while True:
            pipe = self.redis.pipeline(transaction=False)
            for update in pending:
                if update.push is not None:
                    pipe.xadd(
                        update.key,
                        {STREAM_FIELD: update.push},
                        maxlen=JOBS_STREAM_MAXLEN,
                        approximate=True,
                    )
                elif update.only_if_new:
                    for name, value in update.fields.items():
                        pipe.hsetnx(update.key, name, value)
                else:
                    pipe.hset(update.key, mapping=update.fields)  # type: ignore[arg-type]
                if update.expires:
                    pipe.expire(update.key, STATUS_TTL_S)
                elif update.push is None:
                    pipe.persist(update.key)
            try:
                await pipe.execute()
                break
            except RedisError as exc:  # Redis down: keep the batch, retry, never skip it
                heartbeats.beat("status")
                log.warning("redis unavailable for status; retrying", error=str(exc))
                await pause.wait()
        pushed = {update.key for update in pending if update.push is not None}
        await notify(self.redis, self.settings.namespace, pushed)
