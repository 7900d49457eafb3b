"""What every write route shares: error docs, drain check, admission limit, Idempotency-Key."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response

from gateway.errors import ApiError
from gateway.responses import json_response
from schemas import headers as h
from schemas.api import ErrorBody

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in {
        401: "No or bad credential.",
        403: "The credential's user may not act for this subject.",
        409: "A request with the same Idempotency-Key is in progress.",
        413: "Body larger than the limit.",
        415: "Content-Type is not application/json.",
        422: "Invalid request; `detail` lists each problem.",
        429: "Rate limited; see Retry-After and `retry_after_ms`.",
        503: "The broker or Redis is down; retry after Retry-After.",
    }.items()
}


async def refuse_when_draining(request: Request) -> None:
    """503 once SIGTERM started the drain, so the load balancer sends clients elsewhere."""
    if request.app.state.draining:
        raise ApiError(503, "shutting_down", "This gateway is shutting down; retry elsewhere.")


async def admit(
    request: Request, response: Response, user_id: str, cost: int, policy: str = "events"
) -> None:
    """The caller's admission limit for `policy`: headers on `response`, 429/503 raised."""
    state = request.app.state
    response.headers.update(await state.limiter.admit(user_id, state.policies[policy], cost))


async def with_idempotency(request: Request, route: str, user_id: str, produce: Any) -> Response:
    """Run `produce()` once per Idempotency-Key; replay the stored answer afterwards."""
    key = request.headers.get(h.IDEMPOTENCY_KEY)
    if key is None:
        status, body = await produce()
        return json_response(body, status=status)
    store = request.app.state.idempotency
    raw = await request.body()
    stored = await store.begin(user_id, route, key, raw)
    if stored is not None:
        return json_response(
            stored.body, status=stored.status, headers={"Idempotency-Replayed": "true"}
        )
    try:
        status, body = await produce()
    except BaseException:
        await store.abandon(user_id, route, key)
        raise
    await store.complete(user_id, route, key, raw, status, body)
    return json_response(body, status=status)
