"""Request duration by route, method and status, for every HTTP request (Prometheus).

An ASGI layer outside everything else, so the fast path and the FastAPI routes are timed the
same way: from the request's arrival at the app to the last byte of its answer. The route
label is the route's template (`/v1/jobs/{job_id}`), never the concrete path, `unmatched`
where no route knows the path, and methods outside HTTP's usual ones count as `other`: a scan
of random URLs or methods cannot grow the set of series.
"""

from __future__ import annotations

import time
from typing import Any

from opentelemetry.trace import SpanKind
from starlette.datastructures import State
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.metrics import REQUEST_SECONDS
from tributary import telemetry

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"


def labels(scope: Scope, status: int) -> tuple[str, str, str]:
    """(route template, method, status) of a request once answered."""
    route = scope.get("route")
    template = getattr(route, "path", None) or UNMATCHED
    method = scope["method"] if scope["method"] in METHODS else "other"
    return template, method, str(status)


class RequestMetrics:
    """ASGI app around the gateway that times every HTTP request. `state` is the API's
    (`app.state`), as on every layer `gateway.app.create_app` returns."""

    def __init__(self, app: ASGIApp, state: State) -> None:
        self.app = app
        self.state = state
        self._series: dict[tuple[str, str, str], Any] = {}  # children looked up once

    async def _traced(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The request in a server span, continuing the caller's `traceparent` if it sent
        one; the records it produces carry this span's (gateway/tracing.py)."""
        incoming = [(k.decode("latin-1"), v) for k, v in scope.get("headers", ())]
        parent = telemetry.parent_of(incoming)
        name = f"{scope['method']} {scope['path']}"
        with telemetry.tracer().start_as_current_span(name, context=parent, kind=SpanKind.SERVER):
            await self.app(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what a client sees if the app fails before answering

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            if telemetry.enabled:
                await self._traced(scope, receive, send_and_note)
            else:
                await self.app(scope, receive, send_and_note)
        finally:
            key = labels(scope, status)
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = REQUEST_SECONDS.labels(*key)
            series.observe(time.perf_counter() - started)
