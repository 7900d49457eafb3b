"""The projector's small HTTP face: health, metrics, analyst SQL, and replays.

chDB allows one process per data folder, and the projector is that process, so
`tributary query` and the demo ask it rather than opening the folder themselves.
Queries and replays answer only an admin key (`tributary.admin`), checked before the
request is read any further; health and metrics stay open to probes and scrapers.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from projections.analyst_queries import AnalystQueries, QueryError
from projections.history import MAX_EVENTS, Busy, History
from projections.projector import Projector
from projections.replay import Replay
from tributary import admin, liveness
from tributary.credentials import presented
from tributary.ops_metrics import READY

OPEN_PATHS = frozenset({"/healthz/live", "/healthz/ready", "/metrics"})
MAX_BODY_BYTES = 256 * 1024


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(payload, default=str),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


class AdminOnly:
    """401 for any path but health and metrics without an admin key (`X-API-Key`, or
    `Authorization: Bearer`), before the body is read or a route is matched."""

    def __init__(self, app: ASGIApp, hashes: frozenset[str]) -> None:
        self.app = app
        self.hashes = hashes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        key = presented(Headers(scope=scope))
        if admin.accepts(key, self.hashes):
            await self.app(scope, receive, send)
            return
        response = _json(
            {
                "error": "unauthenticated" if key is None else "invalid_admin_key",
                "message": "This API needs an admin key (X-API-Key or Authorization: Bearer).",
            },
            401,
            {"WWW-Authenticate": 'Bearer realm="tributary-admin"'},
        )
        await response(scope, receive, send)


async def _body(request: Request) -> Any:
    """The JSON body, at most `MAX_BODY_BYTES`; `QueryError` otherwise."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise QueryError(
                413, {"error": "body_too_large", "message": f"at most {MAX_BODY_BYTES} bytes"}
            )
        chunks.append(chunk)
    try:
        return orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError as exc:
        raise QueryError(400, {"error": "bad_request", "message": f"not JSON: {exc}"}) from exc


def _bound(value: object) -> int | datetime | None:
    """A replay bound from JSON: null, an offset, or an ISO-8601 timestamp."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, str):
        moment = datetime.fromisoformat(value)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    raise ValueError(f"bound must be null, an offset or an ISO timestamp, not {value!r}")


def build(
    projector: Projector,
    queries: AnalystQueries,
    admin_hashes: frozenset[str],
    history: History | None = None,
) -> ASGIApp:
    replays: dict[str, Replay] = {}
    tasks: set[asyncio.Task[object]] = set()
    running = 0  # analyst queries now; more than `queries.concurrency` are refused

    async def live(_: Request) -> Response:
        settings = projector.settings
        alive, body = liveness.check(
            settings.projector_live_max_rss_mb, settings.loop_stuck_after_s
        )
        return _json(body, 200 if alive else 503)

    async def ready(_: Request) -> Response:
        ok = projector.ready and not projector.stalled
        READY.set(1 if ok else 0)
        body = {
            "status": "up" if ok else "down",
            "backend": projector.ch.backend,
            "stalled": projector.stalled,
            "circuits_open": projector.breakers.open(),
        }
        return _json(body, 200 if ok else 503)

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def query(request: Request) -> Response:
        nonlocal running
        try:
            body = await _body(request)
            sql = body["sql"] if isinstance(body, dict) else None
            if not isinstance(sql, str) or not sql.strip():
                return _json({"error": "bad_request", "message": 'POST {"sql": "..."}'}, 400)
            if running >= queries.concurrency:
                return _json(
                    {
                        "error": "too_many_queries",
                        "limit": "query_concurrency",
                        "setting": "TRIBUTARY_QUERY_CONCURRENCY",
                        "message": f"{queries.concurrency} analyst queries already running",
                    },
                    429,
                    {"Retry-After": "1"},
                )
            running += 1
            try:
                columns, rows = await asyncio.to_thread(queries.run, sql)
            finally:
                running -= 1
        except QueryError as exc:
            return _json(exc.body, exc.status)
        return _json({"columns": columns, "rows": rows})

    async def start_replay(request: Request) -> Response:
        try:
            body = await _body(request)
            replay = Replay(
                projector, str(body["topic"]), _bound(body.get("from")), _bound(body.get("to"))
            )
        except QueryError as exc:
            return _json(exc.body, exc.status)
        except (ValueError, KeyError, TypeError) as exc:
            return _json({"error": "bad_request", "message": str(exc)}, 400)
        replays[replay.status.id] = replay
        task = asyncio.create_task(replay.run(), name=f"replay-{replay.status.id}")
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return _json(replay.status.as_dict(), 202)

    async def replay_status(request: Request) -> Response:
        replay = replays.get(request.path_params["id"])
        if replay is None:
            return _json({"error": "not_found", "message": "no such replay"}, 404)
        return _json(replay.status.as_dict())

    async def history_events(request: Request) -> Response:
        """A user's push messages from ClickHouse (the gateway's resume past Redis)."""
        if history is None:
            return _json({"error": "not_found", "message": "no history here"}, 404)
        params = request.query_params
        try:
            user = params["user"]
            after = int(params.get("after", "0"))
            before = int(params["before"]) if params.get("before") else None
            limit = min(int(params.get("limit", "1000")), MAX_EVENTS)
            if after < 0 or limit < 1 or (before is not None and before < 1):
                raise ValueError("after >= 0, before >= 1, limit >= 1")
        except (KeyError, ValueError) as exc:
            message = f"user, after, before and limit: {exc}"
            return _json({"error": "bad_request", "message": message}, 400)
        try:
            messages = await history.read(user, after, before, limit)
        except Busy:
            body = {"error": "busy", "message": "a history read is running; try again"}
            return _json(body, 503, {"Retry-After": "1"})
        except Exception as exc:  # ClickHouse's errors are one type with a code in the text
            body = {"error": "clickhouse_unavailable", "message": str(exc)[:500]}
            return _json(body, 503, {"Retry-After": "1"})
        body_bytes = b'{"messages":[' + b",".join(messages) + b"]}"
        return Response(body_bytes, media_type="application/json")

    app = Starlette(
        routes=[
            Route("/history/events", history_events, methods=["GET"]),
            Route("/replays", start_replay, methods=["POST"]),
            Route("/replays/{id}", replay_status, methods=["GET"]),
            Route("/healthz/live", live, methods=["GET"]),
            Route("/healthz/ready", ready, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/query", query, methods=["POST"]),
        ]
    )
    return AdminOnly(app, admin_hashes)
