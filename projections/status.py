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
from typing import Any

import orjson
import structlog
from redis.exceptions import RedisError

from projections.consumers import redis_projector_consumer
from schemas.envelope import EnvelopeError, EventView, from_kafka_lenient
from schemas.groups import PROJECTOR_STATUS
from schemas.jobs import (
    CONTAINER_START,
    INFERENCE_REQUESTED,
    JOB_FINISHED,
    container_key,
    job_key,
)
from schemas.push import JOBS_STREAM_MAXLEN, job_payload, jobs_stream_key
from tributary import redis_client
from tributary.kafka_admin import commit_or_log
from tributary.settings import Settings

log = structlog.get_logger(__name__)

STATUS_TTL_S = 7 * 24 * 60 * 60


@dataclass(frozen=True)
class Update:
    key: str
    fields: dict[str, str]
    only_if_new: bool = False
    push: bytes | None = None  # also appended to `key` as a stream entry (job steps)


def updates(namespace: str, event: EventView) -> list[Update]:
    """What one event changes in Redis (pure)."""
    data: dict[str, Any] = event.data
    at = str(data.get("at_ms", int(event.time.timestamp() * 1000)))
    if event.type in (INFERENCE_REQUESTED, CONTAINER_START):
        kind = "inference" if event.type == INFERENCE_REQUESTED else "container.start"
        fields = {"user": event.subject, "kind": kind, "state": "submitted", "updated_ms": at}
        out = [Update(job_key(namespace, event.id), fields, only_if_new=True)]
        if event.type == CONTAINER_START:
            out.append(
                Update(
                    container_key(namespace, event.id),
                    {
                        "user": event.subject,
                        "state": "requested",
                        "image": str(data.get("image", "")),
                        "job_id": event.id,
                        "updated_ms": at,
                    },
                    only_if_new=True,
                )
            )
        return out
    if event.type == JOB_FINISHED:
        return []  # the executor's report to the command agent; the job's own events say it
    if event.type.startswith("job."):
        state = str(data.get("state", event.type.removeprefix("job.")))
        fields = {
            "user": event.subject,
            "kind": str(data.get("kind", "")),
            "state": state,
            "attempts": str(data.get("attempt", 0)),
            "updated_ms": at,
        }
        if "progress" in data:
            fields["progress"] = str(data["progress"])
        if state == "completed":
            fields["progress"] = "1.0"
            fields["result"] = orjson.dumps(data.get("result")).decode()
        if "reason" in data:
            fields["failure_reason"] = str(data["reason"])
        step = job_payload(event.id, event.type, event.time.isoformat(), data)
        out = [
            Update(job_key(namespace, str(data["job_id"])), fields),
            # Pushed to the user's WebSocket (channel=jobs); ids are derived, so a client
            # drops a step it has seen when a re-read batch pushes it again.
            Update(jobs_stream_key(namespace, event.subject), {}, push=step),
        ]
        if data.get("kind") == "container.start" and state in ("rejected", "dead_lettered"):
            out.append(
                Update(
                    container_key(namespace, str(data["job_id"])),
                    {"state": "failed", "reason": str(data.get("reason", "")), "updated_ms": at},
                )
            )
        return out
    if event.type.startswith("container."):
        fields = {"user": event.subject, "state": str(data["state"]), "updated_ms": at}
        if "image" in data:
            fields["image"] = str(data["image"])
        return [Update(container_key(namespace, str(data["container_id"])), fields)]
    return []


class StatusProjector:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.redis = redis_client.connect(settings)
        self.consumer = redis_projector_consumer(settings, PROJECTOR_STATUS)

    async def run(self, stop: asyncio.Event) -> None:
        try:
            # Inside the try: a start that fails half-way is stopped, and Redis closed, too.
            await self.consumer.start()
            while not stop.is_set():
                batch = await self.consumer.getmany(timeout_ms=100, max_records=2000)
                if not batch:
                    continue
                pending: list[Update] = []
                for records in batch.values():
                    for msg in records:
                        try:
                            event = from_kafka_lenient(msg.value, msg.headers)
                            pending.extend(updates(self.settings.namespace, event))
                        except (EnvelopeError, KeyError, TypeError, ValueError) as exc:
                            log.warning("no status in record", offset=msg.offset, error=str(exc))
                await self._apply(pending)
                await commit_or_log(self.consumer, group="projector-status")
        finally:
            await self.consumer.stop()
            await self.redis.aclose()

    async def _apply(self, pending: list[Update]) -> None:
        delay = 0.2
        while True:
            pipe = self.redis.pipeline(transaction=False)
            for update in pending:
                if update.push is not None:
                    pipe.xadd(
                        update.key,
                        {"event": update.push},
                        maxlen=JOBS_STREAM_MAXLEN,
                        approximate=True,
                    )
                elif update.only_if_new:
                    for name, value in update.fields.items():
                        pipe.hsetnx(update.key, name, value)
                else:
                    pipe.hset(update.key, mapping=update.fields)  # type: ignore[arg-type]
                pipe.expire(update.key, STATUS_TTL_S)
            try:
                await pipe.execute()
                return
            except RedisError as exc:  # Redis down: keep the batch, retry, never skip it
                log.warning("redis unavailable for status; retrying", error=str(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
