"""The projector's small HTTP face: health, metrics, read-only SQL, and replays.

chDB allows one process per data folder, and the projector is that process, so
`tributary query` and the demo ask it rather than opening the folder themselves.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from projections.projector import Projector
from projections.replay import Replay
from tributary import liveness

READ_ONLY = re.compile(r"^\s*(SELECT|WITH|SHOW|DESCRIBE|DESC|EXPLAIN|EXISTS)\b", re.IGNORECASE)


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(payload, default=str), status=status, content_type="application/json"
    )


def _bound(value: object) -> int | datetime | None:
    """A replay bound from JSON: null, an offset, or an ISO-8601 timestamp."""
    if value is None or isinstance(value, int):
        return value
    if isinstance(value, str):
        moment = datetime.fromisoformat(value)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    raise ValueError(f"bound must be null, an offset or an ISO timestamp, not {value!r}")


def build(projector: Projector) -> web.Application:
    ch = projector.ch
    app = web.Application()
    replays: dict[str, Replay] = {}
    tasks: set[asyncio.Task[object]] = set()

    async def live(_: web.Request) -> web.Response:
        alive, body = liveness.check(projector.settings.projector_live_max_rss_mb)
        return _json(body, 200 if alive else 503)

    async def ready(_: web.Request) -> web.Response:
        ok = projector.ready and not projector.stalled
        body = {
            "status": "up" if ok else "down",
            "backend": ch.backend,
            "stalled": projector.stalled,
        }
        return _json(body, 200 if ok else 503)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def query(request: web.Request) -> web.Response:
        try:
            body = await request.json()
            sql = str(body["sql"])
        except (ValueError, KeyError, TypeError):
            return _json({"error": "bad_request", "message": 'POST {"sql": "..."}'}, 400)
        if not READ_ONLY.match(sql) or ";" in sql.strip().rstrip(";"):
            return _json(
                {"error": "read_only", "message": "one SELECT/SHOW/DESCRIBE/EXPLAIN only"}, 400
            )
        try:
            columns, rows = await asyncio.to_thread(ch.query, sql)
        except Exception as exc:  # ClickHouse reports bad SQL as a generic error
            return _json({"error": "query_failed", "message": str(exc)[:2000]}, 400)
        return _json({"columns": columns, "rows": rows})

    async def start_replay(request: web.Request) -> web.Response:
        try:
            body = await request.json()
            replay = Replay(
                projector, str(body["topic"]), _bound(body.get("from")), _bound(body.get("to"))
            )
        except (ValueError, KeyError, TypeError) as exc:
            return _json({"error": "bad_request", "message": str(exc)}, 400)
        replays[replay.status.id] = replay
        task = asyncio.create_task(replay.run(), name=f"replay-{replay.status.id}")
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return _json(replay.status.as_dict(), 202)

    async def replay_status(request: web.Request) -> web.Response:
        replay = replays.get(request.match_info["id"])
        if replay is None:
            return _json({"error": "not_found", "message": "no such replay"}, 404)
        return _json(replay.status.as_dict())

    app.add_routes(
        [
            web.post("/replays", start_replay),
            web.get("/replays/{id}", replay_status),
            web.get("/healthz/live", live),
            web.get("/healthz/ready", ready),
            web.get("/metrics", metrics),
            web.post("/query", query),
        ]
    )
    return app
