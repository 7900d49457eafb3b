"""Liveness, readiness and metrics endpoints (unauthenticated)."""

from __future__ import annotations

import shutil

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError

from gateway.responses import json_response
from tributary import liveness
from tributary.ops_metrics import READY

router = APIRouter(tags=["health"])


@router.get("/healthz/live", summary="The process is up and its memory under the limit.")
async def live(request: Request) -> Response:
    settings = request.app.state.settings
    alive, body = liveness.check(settings.live_max_rss_mb, settings.loop_stuck_after_s)
    return json_response(body, status=200 if alive else 503)


@router.get("/healthz/ready", summary="Can take traffic: broker reachable, Redis up, disk ok.")
async def ready(request: Request) -> Response:
    state = request.app.state
    settings = state.settings
    try:
        redis_up = bool(await state.redis.ping())
    except RedisError:
        redis_up = False
    usage = shutil.disk_usage(settings.data_dir if settings.data_dir.exists() else ".")
    disk_used = 1 - usage.free / usage.total
    kafka_up = await state.producer.reachable()
    checks = {
        "kafka": "up" if kafka_up else "down",
        "redis": "up" if redis_up else "down",
        "disk": "ok" if disk_used < settings.ready_max_disk_used else f"{disk_used:.0%} used",
        "draining": "yes" if state.draining else "no",
    }
    ok = kafka_up and redis_up and checks["disk"] == "ok" and not state.draining
    READY.set(1 if ok else 0)
    return json_response(
        {"status": "up" if ok else "down", "checks": checks}, status=200 if ok else 503
    )


@router.get("/metrics", summary="Prometheus metrics.")
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
