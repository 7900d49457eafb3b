"""`POST /v1/events` without FastAPI's layers, for the plain request.

FastAPI's routing, dependency resolution and middleware cost half of a single-event
request (bench/RESULTS.md, issue 4). This ASGI layer, in front of the app, serves the
plain request itself: JSON, no `Idempotency-Key`, a declared length within the limit, a
body that validates, a gateway not draining. It takes the same steps with the same parts
as the FastAPI route (`Authenticator`, `EventIn`, `to_event`, `RateLimiter.admit`,
`produce_event`) and answers their `ApiError`s with the same bodies (`errors.body_of`).
It wraps the FastAPI app from outside (`gateway.app.create_app`), so the plain request also
skips Starlette's own middleware layers (measured: 10 to 20 % of its CPU).

Every other request goes on to the FastAPI route untouched (the body it read is handed
on), so the route stays the reference: it answers 413, 415, 422 and the Idempotency-Key
replays, and it is what `/openapi.json` describes.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.datastructures import Headers, State
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.content_type import is_json
from gateway.errors import ApiError, body_of
from gateway.metrics import FAST_PATH
from gateway.routes.events import produce_event, router, to_event
from gateway.tracing import trace_headers
from schemas import headers as h
from schemas.api import EventIn

PATH = "/v1/events"
ROUTE = next(  # the FastAPI route whose plain requests this layer serves
    r
    for r in router.routes
    if isinstance(r, APIRoute) and r.path == PATH and "POST" in (r.methods or ())
)
# Children looked up once: `labels()` per request showed in the profile.
_SERVED, _REFUSED, _PASSED = (FAST_PATH.labels(outcome=o) for o in ("served", "refused", "passed"))


class FastEvents:
    """ASGI app around the API: the plain `POST /v1/events` answered here, the rest passed
    on. `state` is the API's (`app.state`), so either can be reached the same way."""

    def __init__(self, app: ASGIApp, state: State) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        connection = HTTPConnection(scope)
        headers = connection.headers
        if not self._plain(headers):
            _PASSED.inc()
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:  # the client went away
            return
        state = self.state
        scope["route"] = ROUTE  # as routing would set it: request metrics label by it
        try:
            principal = await state.auth(connection)
            try:
                # Not orjson.loads: it reads integers past 64 bits as floats, silently.
                item = EventIn.model_validate_json(body)
            except ValidationError:
                # The route words validation errors (422 with `detail`); let it.
                _PASSED.inc()
                await self.app(scope, _replay(body, receive), send)
                return
            event = to_event(item, principal, None)
            limits = await state.limiter.admit(event.subject, state.policies["events"], 1)
            accepted = await produce_event(state, event, trace_headers(headers, None))
        except ApiError as exc:
            _REFUSED.inc()
            await _respond(send, exc.status, orjson.dumps(body_of(exc)), exc.headers.items())
            return
        _SERVED.inc()
        await _respond(send, 202, accepted.model_dump_json().encode(), limits.items())

    def _plain(self, headers: Headers) -> bool:
        """A request this layer may serve: anything else needs the route's answers."""
        length = headers.get("content-length", "")
        return (
            not self.state.draining
            and h.IDEMPOTENCY_KEY not in headers
            and is_json(headers.get("content-type", ""))
            and length.isdigit()
            and int(length) <= self.state.settings.max_body_bytes
        )


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives `body` first, then whatever the client sends after."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _respond(
    send: Send, status: int, body: bytes, headers: Iterable[tuple[str, str]]
) -> None:
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
