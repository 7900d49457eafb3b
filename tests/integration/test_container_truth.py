"""Containers whose state stays true, against a real Docker engine.

The engine watch and the reconcile report what the engine did (a kill from outside, an
OOM, a removal), the command agent releases the owner's slot in the same log that
reserved it, lifetime limits stop containers, a worker killed mid-start leaves neither
an orphan nor a second container, and logs are the owner's only.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from typing import Any

import docker
import pytest

from cli.demo import api_keys
from infra.local import dockerd, stack
from schemas.jobs import LABEL_CONTAINER, LABEL_NAMESPACE
from tests.integration.test_jobs import call, wait_for_job
from tributary.settings import Settings

pytestmark = pytest.mark.integration

WORKER = next(app for app in stack.APPS if app.name == "worker")


@pytest.fixture(scope="module")
def engine_stack(services: Settings) -> Iterator[tuple[Settings, dict[str, str]]]:
    """dockerd, then projector, worker and gateway; one container per user, sweeps each second."""
    from infra.local.process import free_port

    settings = services.model_copy(
        update={
            "gateway_port": free_port(),
            "projector_port": free_port(),
            "worker_web_port": free_port(),
            "max_running_containers": 1,
            "rate_limits_containers": "100/s,1000/m,10000/h",
            "reconcile_interval_s": 1.0,
            "orphan_grace_s": 3.0,
        }
    )
    ours = dockerd.managed(settings).pid() is None and not dockerd.is_ready(settings)
    try:
        print(dockerd.start(settings))
        for app in stack.APPS:
            print(stack.start_app(settings, app))
        keys = asyncio.run(api_keys(settings, ["dora", "eve", "fay", "gus", "hal"]))
        yield settings, keys
    finally:
        for app in reversed(stack.APPS):
            stack.managed(settings, app).stop(timeout_s=40)
        if ours:
            dockerd.stop(settings)


def engine(settings: Settings) -> docker.DockerClient:
    return docker.DockerClient(base_url=settings.docker_dsn, timeout=30)


def on_engine(settings: Settings, container_id: str) -> list[Any]:
    """The engine's containers of `container_id`. The SDK lists, then inspects each; one the
    reconcile removes in between raises NotFound, and the listing is asked again."""
    filters = {"label": [f"{LABEL_CONTAINER}={container_id}"]}
    for _ in range(5):
        try:
            return list(engine(settings).containers.list(all=True, filters=filters))
        except docker.errors.NotFound:
            continue
    return list(engine(settings).containers.list(all=True, filters=filters))


def start(settings: Settings, key: str, command: list[str], **body: Any) -> str:
    body = {"image": settings.docker_base_image, "command": command, **body}
    response = call(settings, key, "POST", "/v1/containers", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["container_id"])


def wait_for_container(
    settings: Settings, key: str, container_id: str, states: set[str], timeout_s: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = call(settings, key, "GET", f"/v1/containers/{container_id}")
        if response.status_code == 200:
            body = response.json()
            if body["state"] in states:
                return body
        time.sleep(0.1)
    raise AssertionError(f"container {container_id} never {states} in {timeout_s}s; was {body}")


def test_a_container_killed_outside_is_exited_within_5_s_and_its_slot_is_free(
    engine_stack: tuple[Settings, dict[str, str]],
) -> None:
    settings, keys = engine_stack
    first = start(settings, keys["dora"], ["sleep", "600"])
    wait_for_job(settings, keys["dora"], first, {"completed"}, 60)
    wait_for_container(settings, keys["dora"], first, {"running"}, 30)
    # Her one slot is taken: a second start is refused.
    refused = start(settings, keys["dora"], ["sleep", "600"])
    assert wait_for_job(settings, keys["dora"], refused, {"rejected", "completed"})["state"] == (
        "rejected"
    )
    [container] = on_engine(settings, first)
    killed_at = time.monotonic()
    container.kill()  # through the engine's API, not Tributary's
    body = wait_for_container(settings, keys["dora"], first, {"exited"}, 5)
    assert time.monotonic() - killed_at < 5
    assert (body["reason"], body["exit_code"]) == ("killed", 137)
    second = start(settings, keys["dora"], ["sleep", "600"])
    assert wait_for_job(settings, keys["dora"], second, {"completed", "rejected"})["state"] == (
        "completed"
    )
    # The exited one is removed from the engine by the reconcile (no record holds it).
    deadline = time.monotonic() + 20
    while on_engine(settings, first) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert on_engine(settings, first) == []
    call(settings, keys["dora"], "DELETE", f"/v1/containers/{second}")


def test_an_oom_kill_is_reported_as_such(engine_stack: tuple[Settings, dict[str, str]]) -> None:
    settings, keys = engine_stack
    # dd allocates its 64 MiB block at once; the container may use 16 MiB, no swap. It is
    # the container's main process (exec), so the kernel's kill ends the container.
    command = ["sh", "-c", "sleep 1; exec dd if=/dev/zero of=/dev/null bs=64M count=1"]
    container_id = start(settings, keys["eve"], command, memory_mb=16)
    body = wait_for_container(settings, keys["eve"], container_id, {"exited", "stopped"}, 60)
    assert (body["state"], body["reason"]) == ("exited", "oom"), body


def test_a_lifetime_limit_removes_a_container(
    engine_stack: tuple[Settings, dict[str, str]],
) -> None:
    settings, keys = engine_stack
    container_id = start(settings, keys["fay"], ["sleep", "600"], max_lifetime_s=2)
    wait_for_container(settings, keys["fay"], container_id, {"running"}, 60)
    body = wait_for_container(settings, keys["fay"], container_id, {"stopped", "exited"}, 30)
    assert (body["state"], body["reason"]) == ("stopped", "lifetime"), body
    assert on_engine(settings, container_id) == []


def test_logs_are_the_owners_only_and_bounded(
    engine_stack: tuple[Settings, dict[str, str]],
) -> None:
    settings, keys = engine_stack
    command = ["sh", "-c", "for i in 1 2 3 4 5; do echo line $i; done; sleep 600"]
    container_id = start(settings, keys["gus"], command)
    wait_for_container(settings, keys["gus"], container_id, {"running"}, 60)
    path = f"/v1/containers/{container_id}/logs"
    deadline = time.monotonic() + 10
    while "line 5" not in (text := call(settings, keys["gus"], "GET", f"{path}?tail=2").text):
        assert time.monotonic() < deadline, text
        time.sleep(0.2)
    assert text.splitlines() == ["line 4", "line 5"]
    # Another user: as if there were no such container.
    other = call(settings, keys["hal"], "GET", f"{path}?tail=2")
    assert (other.status_code, other.json()["error"]) == (404, "not_found")
    too_many = call(settings, keys["gus"], "GET", f"{path}?tail=100000")
    assert too_many.status_code == 422
    # The owner can always stop it, even with its status hash gone from Redis.
    import redis

    from schemas import keys as redis_keys

    redis.Redis.from_url(settings.redis_dsn).delete(
        redis_keys.container(settings.namespace, container_id)
    )
    stopped = call(settings, keys["gus"], "DELETE", f"/v1/containers/{container_id}")
    assert stopped.status_code == 202, stopped.text
    wait_for_job(settings, keys["gus"], stopped.json()["job_id"], {"completed"}, 60)
    assert on_engine(settings, container_id) == []


def test_a_worker_killed_while_starting_leaves_no_orphan_and_no_double(
    engine_stack: tuple[Settings, dict[str, str]],
) -> None:
    settings, keys = engine_stack
    container_id = start(settings, keys["hal"], ["sleep", "600"])
    wait_for_job(settings, keys["hal"], container_id, {"active", "completed"}, 60)
    stack.managed(settings, WORKER).stop(timeout_s=0, sig=signal.SIGKILL)
    print(stack.start_app(settings, WORKER))
    job = wait_for_job(settings, keys["hal"], container_id, {"completed", "dead_lettered"}, 120)
    # The attempt the dead worker started is run again by the next owner, as that attempt.
    assert (job["state"], job["attempts"]) == ("completed", 1), job
    wait_for_container(settings, keys["hal"], container_id, {"running"}, 30)
    # One container on the engine for it, and after a few sweeps still one: it is held.
    assert len(on_engine(settings, container_id)) == 1
    time.sleep(settings.orphan_grace_s + 3 * settings.reconcile_interval_s)
    [container] = on_engine(settings, container_id)
    assert container.status == "running"
    ours = engine(settings).containers.list(
        all=True, filters={"label": [f"{LABEL_NAMESPACE}={settings.namespace}"]}
    )
    assert all(c.status == "running" for c in ours), [(c.name, c.status) for c in ours]
    call(settings, keys["hal"], "DELETE", f"/v1/containers/{container_id}")


def test_the_worker_reports_its_transactions_and_attempts_to_prometheus(
    engine_stack: tuple[Settings, dict[str, str]],
) -> None:
    """Found while benchmarking: the worker's /metrics answered 500 (aiohttp refused the
    charset in Prometheus's content type)."""
    import httpx

    settings, _ = engine_stack
    response = httpx.get(f"http://127.0.0.1:{settings.worker_web_port}/metrics", timeout=10)
    assert response.status_code == 200, response.text[:200]
    text = response.text
    assert 'tributary_streams_transaction_records_count{agent="commands"}' in text
    assert "tributary_executor_attempts_running" in text
