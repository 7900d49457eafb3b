"""`GET /v1/containers/{id}/logs?tail=N`: the last lines a container wrote (owner only).

Read from the engine, not from a cache: the engine's labels say whose a container is, so
a status hash that expired or lags never shows one user's logs to another (404 for a
container of someone else, as for one that does not exist). Bounded twice: at most
`container_logs_max_lines` lines, and the last `MAX_LOG_BYTES` bytes of them.
"""

from __future__ import annotations

import asyncio

import docker
from docker.errors import DockerException, NotFound
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import PlainTextResponse
from requests.exceptions import RequestException

from gateway.errors import ApiError, DependencyUnavailable
from gateway.routes.common import ERRORS
from gateway.routes.jobs import ID_PATTERN, caller
from schemas.jobs import LABEL_USER, container_name

router = APIRouter(prefix="/v1", tags=["jobs"])
MAX_LOG_BYTES = 1024 * 1024


def _logs(request: Request, container_id: str, user: str, tail: int) -> bytes | None:
    """The container's last `tail` lines, or None when it is not the caller's."""
    state = request.app.state
    client = getattr(state, "engine", None)
    if client is None:
        client = state.engine = docker.DockerClient(base_url=state.settings.docker_dsn, timeout=10)
    try:
        container = client.containers.get(container_name(state.settings.namespace, container_id))
    except NotFound:
        return None
    if (container.labels or {}).get(LABEL_USER) != user:
        return None
    data: bytes = container.logs(tail=tail, stdout=True, stderr=True)
    return data[-MAX_LOG_BYTES:]


@router.get(
    "/containers/{container_id}/logs",
    response_class=PlainTextResponse,
    responses=ERRORS,
    summary="The last lines of one of the caller's containers' output (stdout and stderr).",
)
async def container_logs(
    request: Request,
    container_id: str = Path(pattern=ID_PATTERN),
    tail: int = Query(default=100, ge=1),
    user: str = Depends(caller),
) -> PlainTextResponse:
    most = request.app.state.settings.container_logs_max_lines
    if tail > most:
        raise ApiError(422, "validation_failed", f"tail: at most {most} lines.")
    try:
        data = await asyncio.to_thread(_logs, request, container_id, user, tail)
    except (DockerException, RequestException) as exc:
        raise DependencyUnavailable("docker", f"container engine unavailable: {exc}") from exc
    if data is None:
        raise ApiError(404, "not_found", "No such container.")
    return PlainTextResponse(data.decode("utf-8", "replace"))
