"""Fixtures that start the real services once per test session.

Kafka and Redis run as local processes under `.tributary-test/` on their own ports,
so a developer's `tributary up` stack is never touched. Services found running are
reused and left running; services this session started are stopped at its end.
Each session gets its own namespace (topics, groups, ClickHouse database).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.local import kafka, redis, stack
from infra.local.process import free_port
from tributary.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
TEST_DATA = ROOT / ".tributary-test"


def make_settings(**overrides: object) -> Settings:
    """Settings for a test stack: test ports, a fresh namespace, free ports for our processes."""
    namespace = f"t{uuid.uuid4().hex[:10]}"
    values: dict[str, object] = {
        "data_dir": TEST_DATA,
        "namespace": namespace,
        "kafka_port": 19092,
        "kafka_controller_port": 19093,
        "kafka_heap": "512m",
        "redis_port": 16379,
        "clickhouse_database": namespace.replace("-", "_"),
        "worker_name": namespace,
        "gateway_port": free_port(),
        "projector_port": free_port(),
        "worker_web_port": free_port(),
        "projector_batch_ms": 200,
        "rate_limits": "1000/s,100000/m,1000000/h",
        "jwt_hs256_secret": "test-secret-for-hs256-which-is-long-enough",
        "log_level": "INFO",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def services() -> Iterator[Settings]:
    """Kafka and Redis up, and this session's topics created."""
    settings = make_settings()
    started = []
    for module in (kafka, redis):
        if module.managed(settings).pid() is None:
            started.append(module)
        print(module.start(settings))
    kafka.ensure_topics(settings)
    yield settings
    for module in reversed(started):
        module.stop(settings)


@pytest.fixture(scope="module")
def apps(services: Settings) -> Iterator[Settings]:
    """The projector, one worker and the gateway, as real processes, on `services`."""
    settings = services.model_copy(
        update={
            "gateway_port": free_port(),
            "projector_port": free_port(),
            "worker_web_port": free_port(),
        }
    )
    try:
        for app in stack.APPS:
            print(stack.start_app(settings, app))
        yield settings
    finally:
        for app in reversed(stack.APPS):
            stack.managed(settings, app).stop(timeout_s=40)
