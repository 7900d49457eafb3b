"""The fast path (`gateway/fast_events.py`) answers `POST /v1/events` exactly as the FastAPI
route does: the same request, sent to a gateway with it and one without, gets the same
status, error body and headers, and the same record on the broker."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from cli.demo import api_keys
from gateway.app import create_app
from infra.local import kafka
from infra.local.process import free_port
from tests.integration.test_gateway_http import EVENT, read_record, wait_ready
from tributary.settings import Settings

pytestmark = pytest.mark.integration

RATE = 3  # per minute, so the fourth request of a user is refused in both gateways
ANSWER_HEADERS = {"content-type", "ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"}
ANSWER_HEADERS |= {"retry-after", "www-authenticate"}


@pytest.fixture(scope="module")
def gateways(services: Settings) -> Iterator[tuple[TestClient, TestClient, Settings]]:
    settings = services.model_copy(
        update={"namespace": f"{services.namespace}-fast", "rate_limits": f"{RATE}/m"}
    )
    kafka.ensure_topics(settings)
    fast = create_app(settings)
    route = create_app(settings.model_copy(update={"gateway_fast_events": False}))
    with TestClient(fast) as fast_client, TestClient(route) as route_client:
        wait_ready(fast_client)
        wait_ready(route_client)
        yield fast_client, route_client, settings


def served_fast() -> float:
    """`tributary_gateway_fast_path_total{outcome="served"}` of this process."""
    for family in text_string_to_metric_families(generate_latest(REGISTRY).decode()):
        if family.name == "tributary_gateway_fast_path":
            return sum(s.value for s in family.samples if s.labels.get("outcome") == "served")
    return 0.0


def _post(client: TestClient, key: str | None, **kwargs: Any) -> Any:
    headers = {"x-api-key": key} if key else {}
    return client.post("/v1/events", headers={**headers, **kwargs.pop("headers", {})}, **kwargs)


def _comparable(response: Any) -> tuple[int, Any, dict[str, str]]:
    body = response.json()
    if response.status_code == 202:
        body = {k: v for k, v in body.items() if k not in ("id", "offset", "partition")}
    headers = {k: v for k, v in response.headers.items() if k in ANSWER_HEADERS}
    return response.status_code, body, headers


CASES: dict[str, dict[str, Any]] = {
    "accepted": {"json": EVENT},
    "no_credential": {"json": EVENT, "key": None},
    "unknown_key": {"json": EVENT, "key": "trb_not-a-key"},
    "bad_bearer": {"json": EVENT, "key": None, "headers": {"authorization": "Bearer x.y.z"}},
    "other_subject": {"json": {**EVENT, "subject": "someone-else"}},
    "unknown_field": {"json": {**EVENT, "color": "red"}},
    "int_past_64_bits": {"json": {**EVENT, "data": {"n": 2**64}}},
    "not_json": {"content": b"{nope", "headers": {"content-type": "application/json"}},
    "not_an_object": {"json": [EVENT]},
    "wrong_content_type": {"content": b"a=b", "headers": {"content-type": "text/plain"}},
    "too_large": {"json": {**EVENT, "data": {"blob": "x" * 2_000_000}}},
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_fast_path_answers_like_the_route(
    gateways: tuple[TestClient, TestClient, Settings], case: str
) -> None:
    fast, route, settings = gateways
    spec = dict(CASES[case])
    users = asyncio.run(api_keys(settings, [f"fast-{case}", f"route-{case}"]))
    wants_key = "key" not in spec
    given_key = spec.pop("key", None)
    fast_key = users[f"fast-{case}"] if wants_key else given_key
    route_key = users[f"route-{case}"] if wants_key else given_key
    if case == "accepted":  # the subject must be the caller: each its own
        served_before = served_fast()
        fast_answer = _post(fast, fast_key, json={**EVENT, "subject": f"fast-{case}"})
        route_answer = _post(route, route_key, json={**EVENT, "subject": f"route-{case}"})
        assert served_fast() == served_before + 1  # the fast gateway did serve it itself
        _same_record(settings, fast_answer.json(), route_answer.json())
        fast_seen, route_seen = _comparable(fast_answer), _comparable(route_answer)
    else:
        fast_seen = _comparable(_post(fast, fast_key, **spec))
        route_seen = _comparable(_post(route, route_key, **spec))
    assert fast_seen == route_seen
    assert (fast_seen[0] == 202) == (case == "accepted")


def test_a_rate_limited_caller_is_refused_alike(
    gateways: tuple[TestClient, TestClient, Settings],
) -> None:
    fast, route, settings = gateways
    keys = asyncio.run(api_keys(settings, ["fast-limited", "route-limited"]))
    answers = {}
    for name, client in (("fast", fast), ("route", route)):
        body = {**EVENT, "subject": f"{name}-limited"}
        seen = [_post(client, keys[f"{name}-limited"], json=body) for _ in range(RATE + 1)]
        answers[name] = [(r.status_code, r.headers["ratelimit-remaining"]) for r in seen]
        refused = seen[-1].json()
        assert refused["error"] == "rate_limited" and refused["retry_after_ms"] > 0
    assert answers["fast"] == answers["route"] == [(202, "2"), (202, "1"), (202, "0"), (429, "0")]


def test_a_dead_broker_is_503_alike(services: Settings) -> None:
    dead = services.model_copy(
        update={"kafka_port": free_port(), "produce_timeout_s": 1.0, "auth_enabled": False}
    )
    seen = []
    for fast in (True, False):
        with TestClient(create_app(dead.model_copy(update={"gateway_fast_events": fast}))) as c:
            seen.append(_comparable(c.post("/v1/events", json=EVENT)))
    assert seen[0] == seen[1]
    assert (seen[0][0], seen[0][1]["error"]) == (503, "broker_unavailable")


def _same_record(settings: Settings, fast: dict[str, Any], route: dict[str, Any]) -> None:
    """Both records carry the same CloudEvents headers and value, bar id, time, subject."""
    records = [
        asyncio.run(read_record(settings, a["partition"], a["offset"])) for a in (fast, route)
    ]
    names = [sorted(k for k, _ in r.headers) for r in records]
    assert names[0] == names[1]
    assert "traceparent" in names[0] and "ce_id" in names[0]
    assert records[0].value == records[1].value
    varying = {"ce_id", "ce_time", "ce_subject", "traceparent"}
    fixed = [{k: v for k, v in r.headers if k not in varying} for r in records]
    assert fixed[0] == fixed[1]
