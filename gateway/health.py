"""Liveness, readiness and metrics endpoints (unauthenticated)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import ORJSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

router = APIRouter(tags=["health"])


@router.get("/healthz/live", summary="The process is up and serving.")
async def live() -> dict[str, str]:
    return {"status": "up"}


@router.get("/healthz/ready", summary="Can take traffic: broker connected, not draining.")
async def ready(request: Request) -> ORJSONResponse:
    state = request.app.state
    checks = {
        "kafka": "up" if state.producer.connected else "down",
        "draining": "yes" if state.draining else "no",
    }
    ok = checks["kafka"] == "up" and not state.draining
    return ORJSONResponse(
        {"status": "up" if ok else "down", "checks": checks}, status_code=200 if ok else 503
    )


@router.get("/metrics", summary="Prometheus metrics.")
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
