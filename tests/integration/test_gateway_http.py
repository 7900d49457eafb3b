"""HTTP semantics of `POST /v1/events` against the real broker (and a dead one)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from cli.demo import api_keys
from gateway.app import create_app
from infra.local.process import free_port
from schemas.envelope import from_kafka, header_value
from schemas.publishing import PUBLISHED
from schemas.topics import INGEST
from tributary.settings import Settings

pytestmark = pytest.mark.integration

EVENT = {"source": "tests", "type": "test.click", "subject": "user-1", "data": {"n": 1}}


def wait_ready(client: TestClient, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if client.get("/healthz/ready").status_code == 200:
            return
        time.sleep(0.1)
    raise AssertionError("gateway never became ready")


@pytest.fixture(scope="module")
def client(services: Settings) -> Iterator[TestClient]:
    key = asyncio.run(api_keys(services, ["user-1"]))["user-1"]
    with TestClient(create_app(services), headers={"x-api-key": key}) as test_client:
        wait_ready(test_client)
        yield test_client


@pytest.fixture(scope="module")
def dev_client(services: Settings) -> Iterator[TestClient]:
    """A gateway with auth off (local dev): the body's `subject` names the user."""
    with TestClient(create_app(services.model_copy(update={"auth_enabled": False}))) as c:
        wait_ready(c)
        yield c


async def read_record(settings: Settings, partition: int, offset: int):  # type: ignore[no-untyped-def]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tp = TopicPartition(INGEST.physical(settings.namespace), partition)
        consumer.assign([tp])
        consumer.seek(tp, offset)
        return await asyncio.wait_for(consumer.getone(), 10)
    finally:
        await consumer.stop()


def test_accepted_event_is_on_the_topic_in_binary_mode(
    client: TestClient, services: Settings
) -> None:
    response = client.post("/v1/events", json={**EVENT, "id": "evt-1"})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["id"] == "evt-1"
    assert body["topic"] == INGEST.physical(services.namespace)
    record = asyncio.run(read_record(services, body["partition"], body["offset"]))
    assert record.key == b"user-1"
    assert header_value(record.headers, "ce_type") == "test.click"
    event = from_kafka(record.value, record.headers)
    assert (event.id, event.subject, event.data) == ("evt-1", "user-1", {"n": 1})
    traceparent = header_value(record.headers, "traceparent")
    assert traceparent is not None and traceparent.startswith("00-")
    # A client's type is the client's: its data is named "any object", never looked up by type.
    schema = "urn:tributary:schema:tributary.event:1"
    assert header_value(record.headers, "ce_dataschema") == schema
    spoof = client.post("/v1/events", json={**EVENT, "type": "job.completed"}).json()
    record = asyncio.run(read_record(services, spoof["partition"], spoof["offset"]))
    assert header_value(record.headers, "ce_dataschema") == schema


def test_one_users_events_share_a_partition(client: TestClient) -> None:
    partitions = {client.post("/v1/events", json=EVENT).json()["partition"] for _ in range(5)}
    assert len(partitions) == 1


def test_malformed_json_is_422_with_reason(client: TestClient) -> None:
    response = client.post(
        "/v1/events", content=b'{"source": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"] == "validation_failed"
    assert "JSON" in response.json()["message"]


def test_missing_user_id_is_422_naming_the_field(dev_client: TestClient) -> None:
    body = {k: v for k, v in EVENT.items() if k != "subject"}
    response = dev_client.post("/v1/events", json=body)
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "validation_failed"
    assert any(d["loc"][-1] == "subject" for d in body["detail"])
    assert "subject" in body["message"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"color": "red"}, "color"),
        ({"subject": "a b"}, "subject"),
        ({"specversion": "0.3"}, "specversion"),
        ({"data": {"n": 2**64}}, "data"),
        ({"time": "2026-01-01T00:00:00"}, "time"),
    ],
)
def test_invalid_fields_are_422(client: TestClient, change: dict, field: str) -> None:
    response = client.post("/v1/events", json={**EVENT, **change})
    assert response.status_code == 422
    assert any(d["loc"][-1] == field for d in response.json()["detail"])


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity"])
@pytest.mark.parametrize("path", ["/v1/events", "/v1/events/batch"])
def test_nan_and_infinity_are_422_not_stored_as_null(
    client: TestClient, path: str, number: bytes
) -> None:
    """Python's and pydantic's JSON parsers take them; orjson would store null."""
    event = b'{"source": "tests", "type": "test.click", "data": {"x": ' + number + b"}}"
    body = event if path == "/v1/events" else b'{"events": [' + event + b"]}"
    response = client.post(path, content=body, headers={"content-type": "application/json"})
    if path == "/v1/events":
        assert response.status_code == 422
        assert "NaN and Infinity" in response.json()["message"]
    else:
        assert response.json()["results"][0]["status"] == 422
        assert response.json()["accepted"] == 0


def test_wrong_content_type_is_415(client: TestClient) -> None:
    response = client.post("/v1/events", content=b"a=b", headers={"content-type": "text/plain"})
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"


def test_oversized_body_is_413(client: TestClient, services: Settings) -> None:
    big = {**EVENT, "data": {"blob": "x" * services.max_body_bytes}}
    response = client.post("/v1/events", json=big)
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


def test_broker_down_is_503_not_a_hang(services: Settings) -> None:
    dead = services.model_copy(
        update={"kafka_port": free_port(), "produce_timeout_s": 2.0, "auth_enabled": False}
    )
    with TestClient(create_app(dead)) as dead_client:
        started = time.monotonic()
        response = dead_client.post("/v1/events", json=EVENT)
        assert time.monotonic() - started < 3
        assert response.status_code == 503
        assert response.json()["error"] == "broker_unavailable"
        assert response.headers["retry-after"] == "1"
        assert dead_client.get("/healthz/ready").status_code == 503
        assert dead_client.get("/healthz/live").status_code == 200


def test_liveness_fails_over_the_memory_limit(services: Settings) -> None:
    live = TestClient(create_app(services)).get("/healthz/live")
    assert live.status_code == 200
    assert live.json()["status"] == "up"
    assert 0 < live.json()["rss_mb"] < services.live_max_rss_mb
    bloated = create_app(services.model_copy(update={"live_max_rss_mb": 1}))
    response = TestClient(bloated).get("/healthz/live")
    assert response.status_code == 503
    body = response.json()
    assert (body["status"], body["max_rss_mb"]) == ("down", 1)
    assert body["rss_mb"] > 1


@pytest.mark.parametrize(
    ("path", "body"), [("/v1/events", EVENT), ("/v1/events/batch", {"events": [EVENT]})]
)
def test_a_draining_gateway_refuses_new_events(client: TestClient, path: str, body: dict) -> None:
    client.app.state.draining = True  # type: ignore[attr-defined]
    try:
        response = client.post(path, json=body)
    finally:
        client.app.state.draining = False  # type: ignore[attr-defined]
    assert (response.status_code, response.json()["error"]) == (503, "shutting_down")


REQUESTS = "tributary_gateway_request_seconds"
DEPENDENCY = "tributary_gateway_dependency_seconds"


def _counts(client: TestClient) -> dict[tuple[str, ...], float]:
    """The `_count` samples of the gateway's latency histograms, keyed by their labels."""
    text = client.get("/metrics").text
    counts: dict[tuple[str, ...], float] = {}
    for family in text_string_to_metric_families(text):
        if family.name not in (REQUESTS, DEPENDENCY):
            continue
        for sample in family.samples:
            if sample.name.endswith("_count"):
                key = tuple(
                    sample.labels[k]
                    for k in ("route", "method", "status", "call")
                    if k in sample.labels
                )
                counts[key] = sample.value
    return counts


def test_requests_are_timed_by_route_template_method_and_status(client: TestClient) -> None:
    before = _counts(client)
    assert client.post("/v1/events", json=EVENT).status_code == 202  # served by the fast path
    assert client.post("/v1/events", json={**EVENT, "type": "a b"}).status_code == 422  # route
    assert client.get("/v1/jobs/no-such-job").status_code == 404
    assert client.get("/v1/no/such/path/x1").status_code == 404
    assert client.request("BREW", "/v1/events").status_code == 405
    after = _counts(client)

    def added(*key: str) -> float:
        return after.get(key, 0) - before.get(key, 0)

    assert added("/v1/events", "POST", "202") == 1
    assert added("/v1/events", "POST", "422") == 1
    assert added("/v1/jobs/{job_id}", "GET", "404") == 1  # the template, not the id
    assert added("unmatched", "GET", "404") == 1  # no series per unknown path
    assert added("/v1/events", "other", "405") == 1  # no series per made-up method
    assert not [key for key in after if "/v1/no/such/path/x1" in key or "BREW" in key]
    # Only the 202 got as far as the limit check and the broker.
    assert added("rate_limit") == 1
    assert added("kafka_ack") == 1


@pytest.mark.parametrize("path", ["/v1/events", "/v1/events/batch"])
def test_a_body_just_under_the_limit_is_produced(
    client: TestClient, services: Settings, path: str
) -> None:
    """Whatever the body limit lets in, the broker takes: the record (the event's data plus
    its headers) is never refused as too large, which a client could only retry forever."""
    blob = "x" * (services.max_body_bytes - 200)
    event = {**EVENT, "data": {"blob": blob}}
    body = event if path == "/v1/events" else {"events": [event]}
    response = client.post(path, json=body)
    assert response.status_code in (200, 202), response.text
    accepted = response.json() if path == "/v1/events" else response.json()["results"][0]
    assert accepted.get("status", 202) == 202, accepted
    record = asyncio.run(read_record(services, accepted["partition"], accepted["offset"]))
    assert from_kafka(record.value, record.headers).data == {"blob": blob}


def test_published_schemas_are_served_without_a_credential(services: Settings) -> None:
    with TestClient(create_app(services)) as anonymous:
        listed = anonymous.get("/v1/schemas")
        assert listed.status_code == 200
        entries = {(e["type"], e["version"]): e for e in listed.json()["schemas"]}
        completed = entries[("job.completed", 1)]
        assert completed["dataschema"] == "urn:tributary:schema:job.completed:1"
        assert completed["topics"] == ["jobs.events"] and completed["current"]
        answer = anonymous.get(completed["url"])
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/schema+json"
        published = PUBLISHED / "job.completed" / "1.json"
        assert answer.json() == orjson.loads(published.read_bytes())
        for path, error in (
            ("/v1/schemas/no.such.type/1", "unknown_type"),
            ("/v1/schemas/job.completed/7", "unknown_version"),
        ):
            missing = anonymous.get(path)
            assert (missing.status_code, missing.json()["error"]) == (404, error)
        assert anonymous.get("/v1/schemas/job.completed/zero").status_code == 422
