"""Fixtures that start the real services once per test session.

Kafka and Redis run as local processes under `.tributary-test/` on their own ports,
so a developer's `tributary up` stack is never touched. Services found running are
reused and left running; services this session started are stopped at its end.
Each session gets its own namespace (topics, groups, ClickHouse database); its topics are
deleted at the end, so a reused test broker does not pile up partitions.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from _pytest.nodes import Item
from _pytest.runner import CallInfo

from infra.local import kafka, redis, stack
from infra.local.process import free_port
from projections.clickhouse import ClickHouse, connect
from projections.migrations import migrate
from tests import containers
from tributary.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
TEST_DATA = Path(os.environ.get("TRIBUTARY_TEST_DATA_DIR", ROOT / ".tributary-test"))
# Shifts the test broker's and Redis's ports, so two checkouts can run their suites at once.
PORT_OFFSET = int(os.environ.get("TRIBUTARY_TEST_PORT_OFFSET", "0"))


# Every namespace this session made: their topics are deleted at its end (`services`).
SESSION_NAMESPACES: set[str] = set()


def make_settings(**overrides: object) -> Settings:
    """Settings for a test stack: test ports, a fresh namespace, free ports for our processes."""
    namespace = f"t{uuid.uuid4().hex[:10]}"
    values: dict[str, object] = {
        "data_dir": TEST_DATA,
        "namespace": namespace,
        "kafka_port": 19092 + PORT_OFFSET,
        "kafka_controller_port": 19093 + PORT_OFFSET,
        "kafka_heap": "512m",
        "redis_port": 16379 + PORT_OFFSET,
        "clickhouse_database": namespace.replace("-", "_"),
        "worker_name": namespace,
        "gateway_port": free_port(),
        "projector_port": free_port(),
        "worker_web_port": free_port(),
        "dashboard_port": free_port(),
        "projector_batch_ms": 200,
        "rate_limits": "1000/s,100000/m,1000000/h",
        "jwt_hs256_secret": "test-secret-for-hs256-which-is-long-enough",
        "log_level": "INFO",
    }
    values.update(overrides)
    settings = Settings(**values)  # type: ignore[arg-type]
    SESSION_NAMESPACES.add(settings.namespace)
    return settings


@pytest.fixture(scope="session")
def services() -> Iterator[Settings]:
    """Kafka and Redis up, and this session's topics created: local processes, or with
    TRIBUTARY_TEST_SERVICES=containers, containers from our images (tests/containers.py)."""
    settings = make_settings()
    if containers.SELECTED:
        with containers.services(settings):
            kafka.ensure_topics(settings)
            yield settings
        return
    started = []
    for module in (kafka, redis):
        if module.managed(settings).pid() is None:
            started.append(module)
        print(module.start(settings))
    kafka.ensure_topics(settings)
    yield settings
    try:
        deleted = kafka.delete_namespaces(settings, SESSION_NAMESPACES)
        print(f"deleted this session's {len(deleted)} topics")
    except Exception as exc:  # a broker gone at teardown must not fail the run
        print(f"could not delete this session's topics: {exc!r}")
    for module in reversed(started):
        module.stop(settings)


@pytest.fixture(scope="session")
def redis_cluster_node(services: Settings) -> Iterator[Settings]:
    """A local Redis Cluster of three masters (its own ports and folder), for the
    Redis-backed tests' second run; stopped at the end if this session started it."""
    cluster = services.model_copy(
        update={
            "data_dir": TEST_DATA / "redis-cluster",
            "redis_port": 17000 + PORT_OFFSET,
            "redis_cluster": True,
        }
    )
    ours = redis.managed(cluster).pid() is None
    print(redis.start(cluster))
    yield services.model_copy(update={"redis_port": cluster.redis_port, "redis_cluster": True})
    if ours:
        redis.stop(cluster)


@pytest.fixture(scope="module", params=["redis", "redis-cluster"])
def redis_settings(request: pytest.FixtureRequest, services: Settings) -> Settings:
    """`services`, on the single Redis or on the local Redis Cluster."""
    if request.param == "redis":
        return services
    return request.getfixturevalue("redis_cluster_node")  # type: ignore[no-any-return]


@pytest.fixture
def chdb(tmp_path: Path) -> Iterator[tuple[Settings, ClickHouse]]:
    """Settings with a fresh chDB folder, and that ClickHouse, migrated; closed after,
    as chDB holds one data folder per process at a time."""
    settings = make_settings(chdb_dir=tmp_path / "chdb")
    ch = connect(settings)
    migrate(ch)
    try:
        yield settings, ch
    finally:
        ch.close()


@contextlib.contextmanager
def app_stack(services: Settings, **overrides: object) -> Iterator[Settings]:
    """The projector, one worker and the gateway, as real processes, on `services` (with
    `overrides`); stopped at the end."""
    settings = services.model_copy(
        update={
            "gateway_port": free_port(),
            "projector_port": free_port(),
            "worker_web_port": free_port(),
            **overrides,
        }
    )
    try:
        for app in stack.APPS:
            print(stack.start_app(settings, app))
        yield settings
    finally:
        for app in reversed(stack.APPS):
            stack.managed(settings, app).stop(timeout_s=40)


@pytest.fixture(scope="module")
def apps(services: Settings) -> Iterator[Settings]:
    """The projector, one worker and the gateway, as real processes, on `services`."""
    with app_stack(services) as settings:
        yield settings


LOG_TAIL_LINES = 40


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: Item, call: CallInfo[None]) -> Iterator[None]:
    """On a failed integration test, attach the tail of each process log to the report.

    CI shows only pytest's output; without this a failure in a child process
    (worker, gateway, projector) leaves no trace of why.
    """
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when != "call" or not report.failed or "integration" not in item.keywords:
        return
    # CI shows a window of the output: Tributary's own processes first, services after.
    services = ("dockerd.log", "triton.log")
    quiet = ("kafka.log", "redis.log")
    logs = [
        p
        for p in (TEST_DATA / "run").glob("*.log")
        if p.name not in quiet and p.stat().st_mtime >= call.start  # written during the test
    ]
    for log in sorted(logs, key=lambda p: (p.name in services, p.name)):
        lines = log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        report.sections.append((f"tail of {log.name}", "\n".join(lines)))
