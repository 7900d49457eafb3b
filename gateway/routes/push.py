"""`WS /v1/ws`: the caller's live events, from Redis Streams any gateway node can read.

- `channel=events` (default), `since=N`: events as the agents sequenced them, JSON
  `{seq, id, type, time, data}` in seq order, from seq N+1 (without `since`: live only).
  Reconnect with `since=<last seq seen>` to resume without gaps or repeats.
- `channel=jobs`, `cursor=C`: the caller's job steps (`job.queued`, `job.active`,
  `job.progress`, `job.completed`, ...) as `{id, type, time, data, cursor}`; reconnect with
  the last `cursor` seen. At-least-once: a step may come twice with the same `id`.
- `channel=container`, `id=<container id>`, `cursor=C`: one container's room (its state
  changes, `container.display.ready`, its exit), for its owner or a holder of a share
  link (`share=`), on any gateway; the same messages and resume rules as `jobs`.

The first message on every channel is a `schemas.push.ResumeMessage` (`"control":
"resume"`): whether what follows is complete (docs/push.md). The credential: an
`X-API-Key`/`Authorization` header, an `api_key`/`token` query parameter, or, with
neither, a first message `{"token": "..."}` within `push_auth_timeout_s`. Bad parameters
and credentials close with 1008 and a reason, Redis down with 1011, a client too slow
with 4008, a draining gateway with 1012 "reconnect".
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Literal

import orjson
import structlog
from fastapi import APIRouter, WebSocket
from opentelemetry.trace import SpanKind
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from redis.exceptions import RedisError
from starlette.websockets import WebSocketDisconnect

from gateway import push_history
from gateway.auth import Principal
from gateway.errors import ApiError
from gateway.push_hub import PAGE, Entry, PushHub, StreamView, Subscriber, parse_id
from gateway.resume import cursor_recovered, events_gap, fill_verdict
from gateway.routes.desktops import shared
from gateway.routes.jobs import ID_PATTERN
from schemas import keys
from schemas.headers import TRACEPARENT
from schemas.push import (
    CLOSE_POLICY,
    CLOSE_RECONNECT,
    CLOSE_SLOW,
    CLOSE_UNAVAILABLE,
    ResumeMessage,
    with_cursor,
)
from tributary import telemetry

log = structlog.get_logger(__name__)
router = APIRouter(tags=["push"])
PATH = "/v1/ws"
MAX_SEQ = 2**63 - 1


class PushQuery(BaseModel):
    """The query parameters of `WS /v1/ws` (credentials and `share` are read apart)."""

    model_config = ConfigDict(extra="ignore")
    channel: Literal["events", "jobs", "container"] = "events"
    since: int | None = Field(default=None, ge=0, le=MAX_SEQ)
    cursor: str = Field(default="0-0", pattern=r"^\d{1,19}(-\d{1,19})?$")
    id: str | None = Field(default=None, pattern=ID_PATTERN)


@router.websocket(PATH)
async def push(websocket: WebSocket) -> None:
    state = websocket.app.state
    await websocket.accept()
    if state.draining:
        await websocket.close(CLOSE_RECONNECT, "draining: reconnect")
        return
    try:
        query = PushQuery.model_validate(dict(websocket.query_params))
    except ValidationError as exc:
        await websocket.close(CLOSE_POLICY, _reason(exc))
        return
    try:
        key, user = await _stream_of(websocket, query)
    except ApiError as exc:
        code = CLOSE_UNAVAILABLE if exc.status == 503 else CLOSE_POLICY
        await websocket.close(code, exc.error)
        return
    except RedisError:
        await websocket.close(CLOSE_UNAVAILABLE, "redis_unavailable")
        return
    hub: PushHub = state.push_hub
    try:
        subscriber = await hub.subscribe(key)
    except RedisError:
        await websocket.close(CLOSE_UNAVAILABLE, "redis_unavailable")
        return
    try:
        await _serve(websocket, hub, subscriber, query, user)
    except RedisError:
        await _close(websocket, CLOSE_UNAVAILABLE, "redis_unavailable")
    except (WebSocketDisconnect, OSError, RuntimeError):
        return  # the client went while a message was being sent
    finally:
        hub.unsubscribe(subscriber)


async def _stream_of(websocket: WebSocket, query: PushQuery) -> tuple[str, str | None]:
    """The stream the caller may read for `query` and the caller (None for a share link),
    or ApiError (its `error` is the close reason)."""
    settings = websocket.app.state.settings
    if query.channel == "container":
        if query.id is None:
            raise ApiError(422, "id: required for channel=container", "")
        share = websocket.query_params.get("share")
        if share is not None:
            if not shared(settings, share, query.id):
                raise ApiError(404, "no_such_container", "")
            user = None
        else:
            user = await _caller(websocket)
            owner = await websocket.app.state.redis.hget(
                keys.container(settings.namespace, query.id), "user"
            )
            if owner is None or owner.decode() != user:
                raise ApiError(404, "no_such_container", "")
        return keys.container_stream(settings.namespace, query.id), user
    user = await _caller(websocket)
    if query.channel == "jobs":
        return keys.jobs_stream(settings.namespace, user), user
    return keys.push_stream(settings.namespace, user), user


async def _caller(websocket: WebSocket) -> str:
    """The user behind the socket's credential: header, query parameter or first message."""
    state = websocket.app.state
    principal: Principal | None
    try:
        principal = await state.auth(websocket)
    except ApiError as exc:
        if exc.error != "unauthenticated":
            raise
        principal = await state.auth.token(await _first_message_token(websocket))
    user = principal.user_id if principal else websocket.query_params.get("subject")
    if not user:
        raise ApiError(422, "subject: required when auth is off", "")
    return str(user)


async def _first_message_token(websocket: WebSocket) -> str:
    timeout = websocket.app.state.settings.push_auth_timeout_s
    try:
        async with asyncio.timeout(timeout):
            message = await websocket.receive()
    except TimeoutError:
        raise ApiError(401, "unauthenticated", "") from None
    text = message.get("text") or (message.get("bytes") or b"").decode(errors="replace")
    try:
        token = orjson.loads(text).get("token") if text else None
    except (orjson.JSONDecodeError, AttributeError):
        token = None
    if not isinstance(token, str) or not token:
        raise ApiError(401, "unauthenticated", "")
    return token


async def _serve(
    websocket: WebSocket, hub: PushHub, subscriber: Subscriber, query: PushQuery, user: str | None
) -> None:
    """The resume message, what the stream (and ClickHouse) hold after the client's place,
    then live entries until the client goes or the hub closes the subscriber."""
    key = subscriber.key
    view = await hub.view(key)
    promised = False  # told the client nothing is missing: the reads must bear it out
    if query.channel == "events":
        if query.since is None:  # live only
            last = view.last or (0, 0)
            resume = ResumeMessage(recovered=True, last=last[0] if view.last else None)
            await websocket.send_text(resume.model_dump_json(exclude_none=True))
            promised = view.last is not None  # no stream: nothing known to follow from
        else:
            assert user is not None  # the events channel has no share links
            last, promised = await _resume_events(websocket, user, query.since, view)
    else:
        last = parse_id(query.cursor)
        recovered = cursor_recovered(last, view.exists, view.max_deleted)
        resume = ResumeMessage(
            recovered=recovered,
            cursor=query.cursor,
            earliest=None if recovered else view.first_text,
            last=view.last_text,
        )
        await websocket.send_text(resume.model_dump_json(exclude_none=True))
    # What the stream holds after the client's place (the subscriber queues what comes
    # after the stream's end as it was at subscription: the two overlap, never gap).
    while True:
        page = await hub.read(key, f"{last[0]}-{last[1]}")
        if promised and page and page[0][0][0] > last[0] + 1:
            # Trimmed since the verdict: rather than skip seqs, have the client resume.
            await _close(websocket, CLOSE_SLOW, "the stream moved on: resume")
            return
        last = await _send(websocket, query.channel, page, last)
        if len(page) < PAGE:
            break
    # Live: the hub queues entries and wakes a sender task only while there is something
    # to send; an idle socket costs this coroutine waiting on the client, nothing more.
    sender = Sender(websocket, subscriber, query.channel, last)
    subscriber.listener = sender.wake
    sender.wake()  # what queued while the client caught up
    try:
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass  # the client has nothing to say after its credential
    finally:
        subscriber.listener = None
        sender.cancel()


class Sender:
    """Sends a subscriber's queued entries to its socket, from a task that lives only while
    there is a backlog; closes the socket when the hub closes the subscriber."""

    __slots__ = ("channel", "last", "subscriber", "task", "websocket")

    def __init__(
        self, websocket: WebSocket, subscriber: Subscriber, channel: str, last: tuple[int, int]
    ) -> None:
        self.websocket = websocket
        self.subscriber = subscriber
        self.channel = channel
        self.last = last
        self.task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run())

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    async def _run(self) -> None:
        try:
            while True:
                if self.subscriber.closing is not None:
                    await _close(self.websocket, *self.subscriber.closing)
                    return
                entries = self.subscriber.drain()
                if not entries:
                    return
                self.last = await _send(self.websocket, self.channel, entries, self.last)
        except (WebSocketDisconnect, OSError, RuntimeError):
            return  # the client went: its receive loop ends the subscription
        except Exception:  # a message it could not send: close, the client resumes
            log.exception("push send failed", stream=self.subscriber.key)
            await _close(self.websocket, CLOSE_UNAVAILABLE, "send failed: resume")


async def _resume_events(
    websocket: WebSocket, user: str, since: int, view: StreamView
) -> tuple[tuple[int, int], bool]:
    """Send the resume message and the ClickHouse fill: the last seq sent, as an id, and
    whether the message said nothing is missing."""
    state = websocket.app.state
    first_seq = view.first[0] if view.first else None
    held = view.last[0] if view.last else None
    gap = events_gap(since, view.exists, first_seq)
    if gap is None:
        resume = ResumeMessage(recovered=True, since=since, last=held)
        await websocket.send_text(resume.model_dump_json(exclude_none=True))
        return (since, 0), True
    after, before = gap
    filled = await push_history.fetch(state.settings, user, after, before)
    verdict = fill_verdict(since, before, filled)
    resume = ResumeMessage(
        recovered=verdict.recovered,
        since=since,
        earliest=verdict.earliest,
        last=held,
        filled=len(verdict.send),
    )
    await websocket.send_text(resume.model_dump_json(exclude_none=True))
    for _, message in verdict.send:
        await websocket.send_text(message.decode())
    if verdict.send:
        return (verdict.send[-1][0], 0), verdict.recovered
    # Nothing filled: from where Redis begins (or from `since` when it holds nothing).
    return ((before - 1, 0) if before is not None else (since, 0)), verdict.recovered


async def _send(
    websocket: WebSocket, channel: str, entries: list[Entry], last: tuple[int, int]
) -> tuple[int, int]:
    for entry_id, text, stored, trace in entries:
        if entry_id <= last:
            continue  # read once from the stream and once from the hub, or filled already
        message = stored.decode() if channel == "events" else with_cursor(stored, text)
        if trace is not None and telemetry.enabled:
            with telemetry.span("push to websocket", [(TRACEPARENT, trace)], SpanKind.PRODUCER):
                await websocket.send_text(message)
        else:
            await websocket.send_text(message)
        last = entry_id
    return last


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    with contextlib.suppress(Exception):
        await websocket.close(code, reason)


def _reason(exc: ValidationError) -> str:
    """A close reason naming the first bad parameter (a close reason holds 123 bytes)."""
    error = exc.errors()[0]
    name = ".".join(str(part) for part in error["loc"]) or "query"
    return f"{name}: {error['msg']}"[:120]
