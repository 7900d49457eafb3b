"""What Redis holds for the gateways is rebuilt from Kafka after Redis lost it.

A user's events (push history) and an inference job (its status hash and step stream:
with no Triton here it fails every attempt and is dead-lettered, a terminal state) are
projected; then the keys are deleted as an eviction or a flush would, the projector is
stopped, `tributary rebuild-redis` rewinds its groups, and the projector, started again,
writes the same status and the same history.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from cli.demo import api_keys
from infra.local import stack
from schemas import keys
from tests.conftest import app_stack
from tributary import redis_client
from tributary.settings import Settings

pytestmark = pytest.mark.integration

USER = "rebuild-user"
EVENTS = 5
PROJECTOR = next(a for a in stack.APPS if a.name == "projector")


@pytest.fixture(scope="module")
def rebuild_stack(services: Settings) -> Iterator[Settings]:
    # No Triton: the inference job's attempts are spent at once, and it is dead-lettered.
    with app_stack(services, retry_base_ms=200, job_unreachable_wait_s=0) as settings:
        yield settings


async def snapshot(settings: Settings, job_id: str) -> dict[str, Any]:
    """The job's status hash and step stream, and the user's push history."""
    client = redis_client.connect(settings)
    ns = settings.namespace
    try:
        return {
            "job": await client.hgetall(keys.job(ns, job_id)),
            "steps": await client.xrange(keys.jobs_stream(ns, USER)),
            "push": await client.xrange(keys.push_stream(ns, USER)),
        }
    finally:
        await client.aclose()


async def forget(settings: Settings, job_id: str) -> None:
    client = redis_client.connect(settings)
    ns = settings.namespace
    try:
        for key in (keys.job(ns, job_id), keys.jobs_stream(ns, USER), keys.push_stream(ns, USER)):
            await client.delete(key)
    finally:
        await client.aclose()


def until(check: Callable[[], bool], what: str, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.3)


def test_status_and_push_history_come_back_from_the_topics(rebuild_stack: Settings) -> None:
    settings = rebuild_stack
    key = asyncio.run(api_keys(settings, [USER]))[USER]
    auth = {"X-API-Key": key}
    for n in range(EVENTS):
        event = {"source": "rebuild", "type": "t.rebuild", "data": {"n": n}}
        answer = httpx.post(f"{settings.gateway_url}/v1/events", json=event, headers=auth)
        assert answer.status_code == 202
    submitted = httpx.post(
        f"{settings.gateway_url}/v1/inference",
        json={"inputs": ["x"], "max_attempts": 2},
        headers=auth,
    )
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["job_id"]

    def settled() -> bool:
        now = asyncio.run(snapshot(settings, job_id))
        return now["job"].get(b"state") == b"dead_lettered" and len(now["push"]) == EVENTS

    until(settled, "the job never dead-lettered, or the events never reached push")
    time.sleep(2)  # anything still on its way lands before the picture is taken
    before = asyncio.run(snapshot(settings, job_id))

    asyncio.run(forget(settings, job_id))
    assert asyncio.run(snapshot(settings, job_id)) == {"job": {}, "steps": [], "push": []}
    stack.managed(settings, PROJECTOR).stop(timeout_s=40)
    env = stack.settings_env(settings)
    rebuilt = subprocess.run(
        [sys.executable, "-m", "cli", "rebuild-redis"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "status:" in rebuilt.stdout and "push:" in rebuilt.stdout
    print(stack.start_app(settings, PROJECTOR))

    until(settled, "the projector did not project the topics again")
    time.sleep(2)
    after = asyncio.run(snapshot(settings, job_id))
    assert after["push"] == before["push"]
    # A job's step stream takes Redis's own entry ids (time of writing): same entries.
    assert [fields for _, fields in after["steps"]] == [fields for _, fields in before["steps"]]
    assert after["job"] == before["job"]


def test_rebuild_refuses_while_the_projector_runs(rebuild_stack: Settings) -> None:
    running = subprocess.run(
        [sys.executable, "-m", "cli", "rebuild-redis", "--store", "push"],
        env=stack.settings_env(rebuild_stack),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert running.returncode != 0
    assert "stop the projector first" in running.stderr + running.stdout
