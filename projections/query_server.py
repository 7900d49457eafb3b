"""The projector's small HTTP face: health, metrics, and read-only SQL over its ClickHouse.

chDB allows one process per data folder, and the projector is that process, so
`tributary query` and the demo ask it rather than opening the folder themselves.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from projections.clickhouse import ClickHouse

READ_ONLY = re.compile(r"^\s*(SELECT|WITH|SHOW|DESCRIBE|DESC|EXPLAIN|EXISTS)\b", re.IGNORECASE)


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(payload, default=str), status=status, content_type="application/json"
    )


def build(ch: ClickHouse, is_ready: Callable[[], bool]) -> web.Application:
    app = web.Application()

    async def live(_: web.Request) -> web.Response:
        return _json({"status": "up"})

    async def ready(_: web.Request) -> web.Response:
        ok = is_ready()
        return _json({"status": "up" if ok else "down", "backend": ch.backend}, 200 if ok else 503)

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

    app.add_routes(
        [
            web.get("/healthz/live", live),
            web.get("/healthz/ready", ready),
            web.get("/metrics", metrics),
            web.post("/query", query),
        ]
    )
    return app
