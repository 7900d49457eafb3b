"""The projector API's admin check (projections/api.AdminOnly), in-process."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from projections.api import AdminOnly
from tributary import admin

KEY = admin.new_key()
READ: list[bytes] = []


async def record(request: Request) -> PlainTextResponse:
    READ.append(await request.body())
    return PlainTextResponse("ran")


APP = Starlette(
    routes=[
        Route(p, record, methods=["GET", "POST"]) for p in ("/query", "/metrics", "/healthz/ready")
    ]
)
CLIENT = TestClient(AdminOnly(APP, frozenset({admin.hash_key(KEY)})))


def test_without_the_key_nothing_is_read_or_run() -> None:
    READ.clear()
    for headers, error in [
        ({}, "unauthenticated"),
        ({"x-api-key": "trba_wrong"}, "invalid_admin_key"),
        ({"authorization": "Bearer " + admin.hash_key(KEY)}, "invalid_admin_key"),
        ({"authorization": "Basic " + KEY}, "unauthenticated"),
        ({"x-api-key": "trb_" + KEY[5:]}, "invalid_admin_key"),
    ]:
        response = CLIENT.post("/query", content=b"secret body", headers=headers)
        assert response.status_code == 401, headers
        assert response.json()["error"] == error, headers
        assert response.headers["www-authenticate"] == 'Bearer realm="tributary-admin"'
    assert CLIENT.get("/no-such-route").status_code == 401  # before routing, too
    assert READ == []


def test_the_key_by_either_header_runs_the_route() -> None:
    READ.clear()
    for headers in ({"x-api-key": KEY}, {"authorization": f"Bearer {KEY}"}):
        assert CLIENT.post("/query", content=b"q", headers=headers).text == "ran"
    assert READ == [b"q", b"q"]


def test_health_and_metrics_stay_open() -> None:
    assert CLIENT.get("/metrics").status_code == 200
    assert CLIENT.get("/healthz/ready").status_code == 200
