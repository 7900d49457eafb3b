"""The container and inference routes' own guards, through the gateway, against real Redis
and Kafka (no worker: a command is accepted once the broker has it): the container
route's own limit, fail-closed container starts when Redis is down, and input limits."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app, policies
from infra.local.process import free_port
from tests.integration.test_gateway_guards import bearer, token
from tests.integration.test_gateway_http import wait_ready
from tributary.settings import Settings

pytestmark = pytest.mark.integration

CONTAINER = {"image": "tributary/busybox:local", "command": ["sleep", "1"]}
EVENT = {"source": "tests", "type": "test.click", "data": {}}


@pytest.fixture(scope="module")
def gateway(services: Settings) -> Iterator[tuple[TestClient, Settings]]:
    """Container starts limited to 2 a minute, events to 10 (minutes: a slow first send
    cannot refill the bucket within the test)."""
    settings = services.model_copy(update={"rate_limits_containers": "2/m", "rate_limits": "10/m"})
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        yield client, settings


def as_new_user(settings: Settings) -> dict[str, str]:
    return bearer(token(settings, f"u-{uuid.uuid4().hex[:8]}"))


def test_the_default_container_limit_is_stricter_in_every_window() -> None:
    names = [
        "rate_limits",
        "rate_limits_containers",
        "rate_limit_fail_open",
        "rate_limit_containers_fail_open",
    ]
    # The declared defaults, whatever TRIBUTARY_* variables this environment sets.
    defaults = policies(Settings(**{n: Settings.model_fields[n].default for n in names}))
    events, containers = defaults["events"].windows, defaults["containers"].windows
    assert len(events) == len(containers)
    for mine, theirs in zip(containers, events, strict=True):
        assert mine.period_ms == theirs.period_ms
        assert mine.limit < theirs.limit
    assert (defaults["events"].fail_open, defaults["containers"].fail_open) == (True, False)


def test_container_starts_have_their_own_limit(gateway: tuple[TestClient, Settings]) -> None:
    client, settings = gateway
    user = as_new_user(settings)
    answers = [client.post("/v1/containers", json=CONTAINER, headers=user) for _ in range(3)]
    assert [a.status_code for a in answers] == [202, 202, 429]
    assert answers[0].headers["ratelimit-limit"] == "2"
    refused = answers[2]
    assert refused.json()["error"] == "rate_limited"
    assert refused.json()["retry_after_ms"] > 0
    assert int(refused.headers["retry-after"]) >= 1
    # The same user's events have their own, looser limit.
    event = client.post("/v1/events", json=EVENT, headers=user)
    assert event.status_code == 202
    assert event.headers["ratelimit-limit"] == "10"


def test_redis_down_refuses_container_starts_and_admits_events(services: Settings) -> None:
    """The defaults: container starts fail closed (503, retry), events fail open."""
    no_redis = services.model_copy(update={"redis_port": free_port()})
    user = as_new_user(no_redis)  # a JWT: no Redis needed to authenticate it
    with TestClient(create_app(no_redis)) as client:
        producer = client.app.state.producer  # type: ignore[attr-defined]
        deadline = time.monotonic() + 20
        while not producer.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        start = client.post("/v1/containers", json=CONTAINER, headers=user)
        assert start.status_code == 503
        assert start.json()["error"] == "redis_unavailable"
        assert start.headers["retry-after"] == "1"
        event = client.post("/v1/events", json=EVENT, headers=user)
        assert event.status_code == 202, event.text


@pytest.mark.parametrize(
    ("path", "body", "where"),
    [
        ("/v1/inference", {"inputs": ["ok", "x" * 8193]}, ["body", "inputs", 1]),
        ("/v1/inference", {"inputs": ["ok"], "temperature": 1}, ["body", "temperature"]),
        ("/v1/inference", {"inputs": []}, ["body", "inputs"]),
        ("/v1/containers", {**CONTAINER, "command": ["sh", "y" * 1025]}, ["body", "command", 1]),
        ("/v1/containers", {**CONTAINER, "privileged": True}, ["body", "privileged"]),
        ("/v1/containers", {**CONTAINER, "memory_mb": 1 << 20}, ["body", "memory_mb"]),
    ],
)
def test_bad_job_requests_are_422_naming_the_field(
    gateway: tuple[TestClient, Settings], path: str, body: dict, where: list
) -> None:
    client, settings = gateway
    response = client.post(path, json=body, headers=as_new_user(settings))
    assert response.status_code == 422
    assert response.json()["error"] == "validation_failed"
    assert [d["loc"] for d in response.json()["detail"]] == [where]


def test_longest_allowed_inputs_are_accepted(gateway: tuple[TestClient, Settings]) -> None:
    client, settings = gateway
    body = {"inputs": ["x" * 8192]}
    assert client.post("/v1/inference", json=body, headers=as_new_user(settings)).status_code == 202


def test_a_bad_dev_mode_user_header_is_422_not_500(services: Settings) -> None:
    dev = services.model_copy(update={"auth_enabled": False})
    with TestClient(create_app(dev)) as client:
        wait_ready(client)
        response = client.post(
            "/v1/inference", json={"inputs": ["a"]}, headers={"x-tributary-user": "not a user"}
        )
        assert response.status_code == 422, response.text
        assert response.json()["error"] == "validation_failed"
        ok = client.post(
            "/v1/inference", json={"inputs": ["a"]}, headers={"x-tributary-user": "dev-1"}
        )
        assert ok.status_code == 202
