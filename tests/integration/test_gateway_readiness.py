"""Readiness follows the broker: a gateway whose broker goes away reports it and answers 503,
and comes back by itself when the broker does. A broker of its own, stopped mid-test."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from infra.local import kafka
from infra.local.process import free_port
from tests.integration.test_gateway_http import wait_ready
from tributary.settings import Settings

pytestmark = pytest.mark.integration

EVENT = {"source": "tests", "type": "test.ready", "subject": "ready-u", "data": {}}


def until(check: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_readiness_follows_a_broker_that_stops_and_comes_back(
    services: Settings, tmp_path: Path
) -> None:
    own = services.model_copy(
        update={
            "data_dir": tmp_path,
            "kafka_port": free_port(),
            "kafka_controller_port": free_port(),
            "auth_enabled": False,
            "produce_timeout_s": 2.0,
        }
    )
    kafka.start(own)
    try:
        kafka.ensure_topics(own)
        with TestClient(create_app(own)) as client:
            wait_ready(client, timeout_s=30)
            assert client.post("/v1/events", json=EVENT).status_code == 202

            def kafka_check() -> str:
                return str(client.get("/healthz/ready").json()["checks"]["kafka"])

            kafka.stop(own)
            assert until(lambda: kafka_check() == "down", 15), "ready with the broker gone"
            assert client.get("/healthz/ready").status_code == 503
            gone = client.post("/v1/events", json=EVENT)
            assert (gone.status_code, gone.json()["error"]) == (503, "broker_unavailable")

            kafka.start(own)
            assert until(lambda: kafka_check() == "up", 60), "not ready after the broker came back"
            back = client.post("/v1/events", json=EVENT)
            assert back.status_code == 202, back.text
    finally:
        kafka.stop(own)
