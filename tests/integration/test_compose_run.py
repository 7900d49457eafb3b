"""docker-compose.yml run for real: our images, built here, on our own Docker engine.

Slow (the images, Triton's among them, are built on a fresh engine of its own: minutes), so
it is marked `slow` and run apart: `pytest -m slow tests/integration/test_compose_run.py`.
It brings the production topology up (`tributary up --compose`), sends 1,000 events from 10
users through the balancer, reads them back in order from ClickHouse and over a WebSocket,
runs one inference job and one container job, and tears everything down leaving no
container, network or volume behind.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from cli.demo import api_keys, query, read_push, send_events
from infra.local import compose, dockerd
from tests.conftest import TEST_DATA
from tributary.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]
IP_FORMAT = "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"


@pytest.fixture(scope="module")
def topology() -> Iterator[Settings]:
    settings = Settings(data_dir=TEST_DATA / "compose")
    ours = dockerd.managed(settings).pid() is None and not dockerd.is_ready(settings)
    volumes_before = compose.volumes(settings) if dockerd.is_ready(settings) else set()
    try:
        timings = compose.up(settings)
        print(f"compose: images {timings['images']:.1f} s, ready {timings['ready']:.1f} s")
        env = {**os.environ, "DOCKER_HOST": settings.docker_dsn}
        redis_ip = subprocess.run(
            ["docker", "inspect", "-f", IP_FORMAT, f"{compose.PROJECT}_redis_1"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        # Redis is not published: API keys are made on its address on the compose network.
        yield settings.model_copy(update={"redis_url": f"redis://{redis_ip}:6379/0"})
    finally:
        try:
            compose.down(settings)
            leftovers = compose.leftovers(settings)
            leftovers += [f"volume {v}" for v in compose.volumes(settings) - volumes_before]
        finally:
            if ours:
                dockerd.stop(settings)
    assert leftovers == []


def test_events_through_the_balancer_arrive_once_and_in_order(topology: Settings) -> None:
    run = f"compose-{int(time.time())}"
    _, _, keys = asyncio.run(send_events(topology, run, events=1000, users=10))
    db = topology.clickhouse_database
    where = f"user_id LIKE 'demo-{run}-%'"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        [[count]] = query(topology, f"SELECT count() FROM {db}.events_counted WHERE {where}")
        if count >= 1000:
            break
        time.sleep(0.5)
    # Per user: 100 rows, seq 1..100 with no gap or repeat, in the order of the log, and
    # the client's own counter (data.n) in the same order: once, and in order.
    rows = query(
        topology,
        f"SELECT user_id, count(), uniqExact(seq), "
        f"arrayMap(x -> x.2, arraySort(groupArray((_offset, seq)))) = range(1, 101), "
        f"arrayMap(x -> x.2, arraySort(groupArray((seq, JSONExtractInt(data, 'data', 'n'))))) "
        f"= range(0, 100) "
        f"FROM {db}.events_counted WHERE {where} GROUP BY user_id ORDER BY user_id",
    )
    assert len(rows) == 10, rows
    assert all(list(r[1:]) == [100, 100, 1, 1] for r in rows), rows
    user = f"demo-{run}-u3"
    pushed = asyncio.run(read_push(topology, user, keys[user], 0, 100))
    assert [m.seq for m in pushed] == list(range(1, 101))


def test_an_inference_job_and_a_container_job_run(topology: Settings) -> None:
    key = asyncio.run(api_keys(topology, ["compose-jobs"]))["compose-jobs"]
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=compose.BALANCER, headers=headers, timeout=30) as client:
        inference = client.post("/v1/inference", json={"inputs": ["through compose"]})
        container = client.post(
            "/v1/containers", json={"image": "tributary/busybox:local", "command": ["sleep", "60"]}
        )
        assert inference.status_code == container.status_code == 202
        job_id, container_id = inference.json()["job_id"], container.json()["container_id"]
        deadline = time.monotonic() + 120
        job: dict = {}
        while time.monotonic() < deadline:
            job = client.get(f"/v1/jobs/{job_id}").json()
            state = client.get(f"/v1/containers/{container_id}").json()
            if job.get("state") == "completed" and state.get("state") == "running":
                break
            time.sleep(0.5)
        assert job["state"] == "completed" and len(job["result"]["embeddings"][0]) == 384
        assert state["state"] == "running", state
        assert client.delete(f"/v1/containers/{container_id}").status_code == 202
        while time.monotonic() < deadline:
            if client.get(f"/v1/containers/{container_id}").json().get("state") == "stopped":
                break
            time.sleep(0.5)
        assert client.get(f"/v1/containers/{container_id}").json()["state"] == "stopped"
