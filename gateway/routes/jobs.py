"""Containers and inference: commands in (202 with a job id), status out (from Redis).

A POST becomes one CloudEvent on `commands`, keyed by the caller; the command agent
decides it (its limits are the rules of record) and the status projector writes what
happened into Redis, where `GET /v1/jobs/{id}` and `GET /v1/containers/{id}` read it.
Another user's job or container is 404, not 403: ids are not disclosed.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from fastapi import APIRouter, Depends, Path, Request, Response
from redis.exceptions import RedisError

from gateway.auth import Principal, authenticate
from gateway.content_type import require_json
from gateway.errors import ApiError, DependencyUnavailable
from gateway.metrics import EVENTS_ACCEPTED
from gateway.routes.common import ERRORS, admit, refuse_when_draining, with_idempotency
from gateway.tracing import trace_headers
from schemas import headers as h
from schemas import keys
from schemas.envelope import USER_ID_PATTERN, CloudEvent, new_event_id
from schemas.jobs import (
    CONTAINER_ID_PATTERN,
    CONTAINER_START,
    CONTAINER_STOP,
    INFERENCE_REQUESTED,
    ContainerIn,
    ContainerStop,
    ContainerView,
    InferenceIn,
    JobAccepted,
    JobView,
)
from schemas.status import ContainerStatusHash, JobStatus, Status
from schemas.topics import COMMANDS

router = APIRouter(prefix="/v1", tags=["jobs"])
SOURCE = "tributary/gateway"
ID_PATTERN = CONTAINER_ID_PATTERN
_ID_NAMESPACE = uuid.UUID("3c0f5f2e-1d7b-4a84-b5a4-0e6e4a9b7c11")
_USER_ID = re.compile(USER_ID_PATTERN)


async def caller(request: Request, principal: Principal | None = Depends(authenticate)) -> str:
    """The user: from the credential, or in dev mode (auth off) the X-Tributary-User header."""
    if principal is not None:
        return principal.user_id
    user = request.headers.get(h.USER)
    if not user or not _USER_ID.fullmatch(user):
        raise ApiError(
            422,
            "validation_failed",
            "X-Tributary-User: required when auth is off, and a user id "
            f"(pattern {USER_ID_PATTERN}).",
        )
    return user


def command_id(user: str, route: str, request: Request) -> str:
    """The job id: derived from the Idempotency-Key when there is one, so a retry names it."""
    idem = request.headers.get(h.IDEMPOTENCY_KEY)
    if idem is None:
        return new_event_id()
    return str(uuid.uuid5(_ID_NAMESPACE, f"{user}:{route}:{idem}"))


async def submit(
    request: Request, response: Response, user: str, route: str, kind: str, data: dict[str, Any]
) -> Response:
    state = request.app.state
    job_id = command_id(user, route, request)
    event = CloudEvent(id=job_id, source=SOURCE, type=kind, subject=user, data=data)
    topic = COMMANDS.physical(state.settings.namespace)

    async def produce() -> tuple[int, dict[str, Any]]:
        extra = trace_headers(request.headers, request.headers.get(h.IDEMPOTENCY_KEY))
        await state.producer.send(topic, event, extra)
        EVENTS_ACCEPTED.labels(topic=COMMANDS.name).inc()
        answer = JobAccepted(
            job_id=job_id,
            status_url=f"/v1/jobs/{job_id}",
            container_id=job_id if kind == CONTAINER_START else None,
        )
        return 202, answer.model_dump(exclude_none=True)

    answer = await with_idempotency(request, route, user, produce)
    answer.headers.update(response.headers)
    return answer


async def read_hash(request: Request, model: type[Status], key: str, user: str) -> Status:
    """The status hash at `key`; 404 when there is none or it is another user's."""
    try:
        raw: dict[bytes, bytes] = await request.app.state.redis.hgetall(key)
    except RedisError as exc:
        raise DependencyUnavailable("redis", f"status store unavailable: {exc}") from exc
    status = model.from_fields(raw) if raw else None
    if status is None or status.user != user:
        what = "job" if model is JobStatus else "container"
        raise ApiError(404, "not_found", f"No such {what}.")
    return status


async def _held_by_another(request: Request, key: str, user: str) -> bool:
    try:
        owner = await request.app.state.redis.hget(key, "user")
    except RedisError as exc:
        raise DependencyUnavailable("redis", f"status store unavailable: {exc}") from exc
    return owner is not None and owner.decode() != user


WRITE = [Depends(require_json), Depends(refuse_when_draining)]


@router.post(
    "/containers",
    status_code=202,
    response_model=JobAccepted,
    responses=ERRORS,
    dependencies=WRITE,
    summary="Start a container for the caller; follow the returned job.",
)
async def start_container(
    body: ContainerIn, request: Request, response: Response, user: str = Depends(caller)
) -> Response:
    await admit(request, response, user, 1, policy="containers")
    return await submit(request, response, user, "containers", CONTAINER_START, body.model_dump())


@router.delete(
    "/containers/{container_id}",
    status_code=202,
    response_model=JobAccepted,
    responses=ERRORS,
    dependencies=[Depends(refuse_when_draining)],
    summary="Stop and remove one of the caller's containers.",
)
async def stop_container(
    request: Request,
    response: Response,
    container_id: str = Path(pattern=ID_PATTERN),
    user: str = Depends(caller),
) -> Response:
    # The command agent decides (it holds the user's containers): a status hash that has
    # expired or was never written must not keep a running container from being stopped.
    # Only another user's container is refused here, as 404 (ids are not disclosed).
    key = keys.container(request.app.state.settings.namespace, container_id)
    try:
        await read_hash(request, ContainerStatusHash, key, user)
    except ApiError as exc:
        if exc.status != 404 or await _held_by_another(request, key, user):
            raise
    await admit(request, response, user, 1, policy="containers")
    data = ContainerStop(container_id=container_id).model_dump()
    return await submit(request, response, user, "containers_stop", CONTAINER_STOP, data)


@router.get(
    "/containers/{container_id}",
    response_model=ContainerView,
    responses=ERRORS,
    summary="A container's state as the stream side last reported it.",
)
async def get_container(
    request: Request, container_id: str = Path(pattern=ID_PATTERN), user: str = Depends(caller)
) -> ContainerView:
    key = keys.container(request.app.state.settings.namespace, container_id)
    return (await read_hash(request, ContainerStatusHash, key, user)).view(container_id)


@router.post(
    "/inference",
    status_code=202,
    response_model=JobAccepted,
    responses=ERRORS,
    dependencies=WRITE,
    summary="Queue an inference job (embeddings of `inputs`); follow the returned job.",
)
async def post_inference(
    body: InferenceIn, request: Request, response: Response, user: str = Depends(caller)
) -> Response:
    await admit(request, response, user, 1)
    return await submit(
        request, response, user, "inference", INFERENCE_REQUESTED, body.model_dump()
    )


@router.get(
    "/jobs/{job_id}",
    response_model=JobView,
    responses=ERRORS,
    summary="A job's state, attempts, progress, failure reason and result.",
)
async def get_job(
    request: Request, job_id: str = Path(pattern=ID_PATTERN), user: str = Depends(caller)
) -> JobView:
    key = keys.job(request.app.state.settings.namespace, job_id)
    return (await read_hash(request, JobStatus, key, user)).view(job_id)
