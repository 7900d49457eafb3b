"""`WS /v1/ws`: the caller's live events, from Redis Streams any gateway node can read.

- `channel=events` (default), `since=N`: events as the agents sequenced them, JSON
  `{seq, id, type, time, data}` in seq order; reconnect with `since=<last seq seen>` to
  resume without gaps or repeats.
- `channel=jobs`, `cursor=C`: the caller's job steps (`job.queued`, `job.active`,
  `job.progress`, `job.completed`, ...) as `{id, type, time, data, cursor}`; reconnect with
  the last `cursor` seen. At-least-once: a step may come twice with the same `id`.
- `channel=container`, `id=<container id>`, `cursor=C`: one container's room (its state
  changes, `container.display.ready`, its exit), for its owner or a holder of a share
  link (`share=`), on any gateway; the same messages and resume rules as `jobs`.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Literal

from fastapi import APIRouter, Query, WebSocket
from redis.exceptions import RedisError
from starlette.websockets import WebSocketDisconnect

from gateway.errors import ApiError
from gateway.routes.desktops import refuse, shared
from gateway.routes.jobs import ID_PATTERN
from schemas import keys
from schemas.push import STREAM_FIELD, with_cursor

router = APIRouter(tags=["push"])


@router.websocket("/v1/ws")
async def push(
    websocket: WebSocket,
    since: int = 0,
    channel: Literal["events", "jobs", "container"] = "events",
    cursor: str = Query(default="0-0", pattern=r"^\d+(-\d+)?$"),
    id: str | None = Query(default=None, pattern=ID_PATTERN),  # the API's name
) -> None:
    state = websocket.app.state
    if channel == "container":
        room = await _room(websocket, id)
        if room is not None:
            await _relay(websocket, room, cursor, channel)
        return
    try:
        principal = await state.auth(websocket)
    except ApiError as exc:
        await websocket.close(code=1008, reason=exc.error)
        return
    user = principal.user_id if principal else websocket.query_params.get("subject")
    if not user:
        await websocket.close(code=1008, reason="subject required when auth is off")
        return
    await websocket.accept()
    if channel == "jobs":
        key, last = keys.jobs_stream(state.settings.namespace, user), cursor
    else:
        key, last = keys.push_stream(state.settings.namespace, user), f"{max(since, 0)}-0"
    await _relay(websocket, key, last, channel)


async def _room(websocket: WebSocket, container_id: str | None) -> str | None:
    """The container's room stream, once the caller may read it (else closed: None)."""
    state = websocket.app.state
    if container_id is None:
        await refuse(websocket, "id required for channel=container")
        return None
    share = websocket.query_params.get("share")
    if share is not None:
        allowed = shared(state.settings, share, container_id)
    else:
        try:
            principal = await state.auth(websocket)
        except ApiError as exc:
            await refuse(websocket, exc.error)
            return None
        user = principal.user_id if principal else websocket.query_params.get("subject")
        try:
            owner = await state.redis.hget(
                keys.container(state.settings.namespace, container_id), "user"
            )
        except RedisError:
            await refuse(websocket, "redis_unavailable", code=1011)
            return None
        allowed = owner is not None and owner.decode() == user
    if not allowed:
        await refuse(websocket, "no_such_container")
        return None
    await websocket.accept()
    return keys.container_stream(state.settings.namespace, container_id)


async def _relay(websocket: WebSocket, key: str, last: str, channel: str) -> None:
    """Entries of stream `key` after `last`, live, until the client goes."""
    state = websocket.app.state
    receiver = asyncio.create_task(websocket.receive())
    try:
        while True:
            reader = asyncio.create_task(state.redis.xread({key: last}, count=500, block=1000))
            done, _ = await asyncio.wait({reader, receiver}, return_when=asyncio.FIRST_COMPLETED)
            if receiver in done:
                reader.cancel()
                if receiver.result()["type"] == "websocket.disconnect":
                    return
                receiver = asyncio.create_task(websocket.receive())  # ignore client messages
                continue
            for _, entries in reader.result() or []:
                for entry_id, fields in entries:
                    last = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                    stored = fields[STREAM_FIELD.encode()]
                    if channel in ("jobs", "container"):
                        await websocket.send_text(with_cursor(stored, last))
                    else:
                        await websocket.send_text(stored.decode())
    except RedisError:
        await websocket.close(code=1011, reason="redis_unavailable")
    except WebSocketDisconnect:
        return
    finally:
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await receiver
