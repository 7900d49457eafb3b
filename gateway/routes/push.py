"""`WS /v1/ws?since=N`: the caller's events as the agents sequenced them, pushed live.

Reads the user's Redis Stream that the push projector fills (any gateway node can serve
any user). Messages are JSON `{seq, id, type, time, data}` in seq order; a client that
reconnects with `since=<last seq it saw>` resumes without gaps or repeats.
"""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, WebSocket
from redis.exceptions import RedisError
from starlette.websockets import WebSocketDisconnect

from gateway.errors import ApiError
from schemas.push import stream_key

router = APIRouter(tags=["push"])


@router.websocket("/v1/ws")
async def push(websocket: WebSocket, since: int = 0) -> None:
    state = websocket.app.state
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
    key = stream_key(state.settings.namespace, user)
    last = f"{max(since, 0)}-0"
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
                    await websocket.send_text(fields[b"event"].decode())
                    last = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    except RedisError:
        await websocket.close(code=1011, reason="redis_unavailable")
    except WebSocketDisconnect:
        return
    finally:
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await receiver
