"""Containers and inference as jobs, through real processes, a real dockerd and Triton.

HTTP → `commands` → command agent (limits) → work tier → executor (Docker / Triton)
→ `jobs.events` / `containers.events` → status projector → Redis → `GET /v1/jobs`.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.fault_load import live_leases, user_states
from cli.demo import api_keys, query
from cli.demo import run as run_demo
from cli.loadgen import produce_all
from infra.local import dockerd, jaeger, stack, triton
from schemas.envelope import CloudEvent
from schemas.jobs import DESKTOP_SESSION, DesktopSession, container_name
from schemas.publishing import PUBLISHED
from schemas.topics import (
    COMMANDS,
    DESKTOP_SESSIONS,
    DLQ,
    INGEST,
    REGISTRY,
    REJECTED,
    WORK_NORMAL,
)
from streams import dlq_admin
from streams.jobs.admission import UserState
from tests.conftest import PORT_OFFSET
from tests.integration.kafka_helpers import read_all
from tributary.kafka_clients import partitions, started
from tributary.settings import Settings

pytestmark = pytest.mark.integration

TRITON = f"127.0.0.1:{18000 + PORT_OFFSET}"


@pytest.fixture(scope="module")
def jobs_stack(services: Settings) -> Iterator[tuple[Settings, dict[str, str]]]:
    """dockerd, Triton, Jaeger, then projector, worker and gateway with small quotas and
    retry delays, every process sending its spans to Jaeger."""
    from infra.local.process import free_port

    settings = services.model_copy(
        update={
            "gateway_port": free_port(),
            "projector_port": free_port(),
            "worker_web_port": free_port(),
            "triton_url": TRITON,
            "max_running_containers": 2,
            "retry_base_ms": 8000,
            "rate_limits_containers": "100/s,1000/m,10000/h",
            # Normal-priority inference gets 1 slot; high ones the reserved second.
            "gpu_pool_slots": 2,
            "otlp_endpoint": jaeger.OTLP_ENDPOINT,
        }
    )
    ours = dockerd.managed(settings).pid() is None and not dockerd.is_ready(settings)
    tracing_ours = not jaeger.is_ready()
    try:
        # Inside the try: a Triton that is not ready in time is stopped, not left holding
        # its ports for the next start.
        print(dockerd.start(settings))
        print(triton.start(settings))
        print(jaeger.start(settings))
        for app in stack.APPS:
            print(stack.start_app(settings, app))
        keys = asyncio.run(api_keys(settings, ["alice", "bob"]))
        yield settings, keys
    finally:
        for app in reversed(stack.APPS):
            stack.managed(settings, app).stop(timeout_s=40)
        triton.stop(settings)
        if tracing_ours:
            jaeger.stop(settings)
        if ours:
            dockerd.stop(settings)


def call(settings: Settings, key: str, method: str, path: str, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}", **kw.pop("headers", {})}
    return httpx.request(method, f"{settings.gateway_url}{path}", headers=headers, timeout=30, **kw)


def submit_inference(settings: Settings, key: str, texts: list[str], jobs: int) -> list[str]:
    """`jobs` normal-priority inference jobs of `texts`; their ids."""
    return [
        call(settings, key, "POST", "/v1/inference", json={"inputs": texts}).json()["job_id"]
        for _ in range(jobs)
    ]


def wait_for_job(
    settings: Settings, key: str, job_id: str, states: set[str], timeout_s: float = 90
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = call(settings, key, "GET", f"/v1/jobs/{job_id}")
        if response.status_code == 200:
            body = response.json()
            if body["state"] in states:
                return body
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} never reached {states}; last seen {body}")


def released(settings: Settings, user: str, what: str, timeout_s: float = 30) -> UserState:
    """`user`'s state once `what` (a job or container id) holds no slot in it."""
    deadline = time.monotonic() + timeout_s
    while True:
        state = user_states(settings).get(user, UserState())
        if what not in state.in_flight and what not in state.containers:
            return state
        assert time.monotonic() < deadline, f"{what} still holds a slot: {state}"
        time.sleep(0.5)


def trace_of(trace_id: str, wanted: set[str], timeout_s: float = 60) -> dict[str, set[str]]:
    """Jaeger's view of one trace, by its query API: operation names per service, once
    every one of `wanted` is among them (spans arrive in batches from each process)."""
    deadline = time.monotonic() + timeout_s
    seen: dict[str, set[str]] = {}
    while time.monotonic() < deadline:
        response = httpx.get(f"{jaeger.QUERY_URL}/api/traces/{trace_id}", timeout=5)
        if response.status_code == 200 and response.json().get("data"):
            [found] = response.json()["data"]
            services = {k: p["serviceName"] for k, p in found["processes"].items()}
            seen = {}
            for span in found["spans"]:
                seen.setdefault(services[span["processID"]], set()).add(span["operationName"])
            if wanted <= set().union(*seen.values()):
                return seen
        time.sleep(1)
    raise AssertionError(f"trace {trace_id} lacks {wanted}: {seen}")


def test_one_trace_per_request_across_every_hop_in_jaeger(
    jobs_stack: tuple[Settings, dict],
) -> None:
    """An event and an inference job, each sent with a `traceparent` of our own: Jaeger holds
    one trace for each whose spans go from the gateway through the agents to the projector
    and the WebSocket push (the event), and to the executor's Triton call and the status
    projector (the job)."""
    import secrets

    from tributary.client import PushClient

    settings, keys = jobs_stack
    event_trace, job_trace = secrets.token_hex(16), secrets.token_hex(16)

    def parent(trace_id: str) -> dict[str, str]:
        return {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}

    async def event_pushed() -> int:
        client = PushClient(settings.gateway_url, api_key=keys["alice"])
        events = client.events()
        reading = asyncio.create_task(anext(events))
        await asyncio.sleep(1)  # subscribed, live
        body = {"source": "trace", "type": "t.traced", "data": {"n": 1}}
        response = await asyncio.to_thread(
            call,
            settings,
            keys["alice"],
            "POST",
            "/v1/events",
            json=body,
            headers=parent(event_trace),
        )
        assert response.status_code == 202, response.text
        pushed = await asyncio.wait_for(reading, 60)
        await events.aclose()
        return pushed.seq

    assert asyncio.run(event_pushed()) >= 1
    response = call(
        settings,
        keys["alice"],
        "POST",
        "/v1/inference",
        json={"inputs": ["a traced sentence"]},
        headers=parent(job_trace),
    )
    assert response.status_code == 202, response.text
    job = wait_for_job(settings, keys["alice"], response.json()["job_id"], {"completed"})
    assert job["state"] == "completed"

    event_spans = trace_of(
        event_trace,
        {
            "POST /v1/events",
            "counter decide",
            "project to events_counted",
            "push to redis",
            "push to websocket",
        },
    )
    assert set(event_spans) >= {"tributary-gateway", "tributary-worker", "tributary-projector"}
    job_spans = trace_of(
        job_trace,
        {"POST /v1/inference", "commands decide", "inference attempt", "status job.completed"},
    )
    assert set(job_spans) >= {"tributary-gateway", "tributary-worker", "tributary-projector"}
    print(f"event trace: {event_spans}\njob trace: {job_spans}")


def test_inference_job_completes_with_embeddings(jobs_stack: tuple[Settings, dict]) -> None:
    settings, keys = jobs_stack
    texts = [f"sentence number {i}" for i in range(20)]
    response = call(
        settings, keys["alice"], "POST", "/v1/inference", json={"inputs": texts, "priority": "high"}
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    job = wait_for_job(settings, keys["alice"], job_id, {"completed", "dead_lettered"})
    assert job["state"] == "completed", job
    assert job["attempts"] == 1 and job["progress"] == 1.0
    result = job["result"]
    assert result["dimension"] == 384 and len(result["embeddings"]) == 20
    # Another user cannot see it.
    assert call(settings, keys["bob"], "GET", f"/v1/jobs/{job_id}").status_code == 404


def view_state(settings: Settings, key: str, container_id: str, wanted: str) -> None:
    """Wait for the container's view to say `wanted`. Its state comes from
    `containers.events`, the job's from `jobs.events`: the status projector may apply the
    job's step first."""
    deadline = time.monotonic() + 15
    path = f"/v1/containers/{container_id}"
    while (view := call(settings, key, "GET", path).json())["state"] != wanted:
        assert time.monotonic() < deadline, view
        time.sleep(0.2)


def test_container_starts_on_the_engine_and_stops(jobs_stack: tuple[Settings, dict]) -> None:
    settings, keys = jobs_stack
    body = {"image": settings.docker_base_image, "command": ["sleep", "600"]}
    response = call(settings, keys["alice"], "POST", "/v1/containers", json=body)
    assert response.status_code == 202, response.text
    container_id = response.json()["container_id"]
    job = wait_for_job(settings, keys["alice"], container_id, {"completed", "dead_lettered"})
    assert job["state"] == "completed", job
    with dockerd.client(settings) as engine:
        running = engine.containers.get(container_name(settings.namespace, container_id))
    assert running.status == "running"
    assert running.attrs["HostConfig"]["Init"] is True
    assert running.labels["tributary.user"] == "alice"
    view_state(settings, keys["alice"], container_id, "running")

    stop = call(settings, keys["alice"], "DELETE", f"/v1/containers/{container_id}")
    assert stop.status_code == 202, stop.text
    wait_for_job(settings, keys["alice"], stop.json()["job_id"], {"completed"})
    with dockerd.client(settings) as engine, pytest.raises(docker.errors.NotFound):
        engine.containers.get(container_name(settings.namespace, container_id))
    view_state(settings, keys["alice"], container_id, "stopped")
    released(settings, "alice", container_id)  # the stop gave its quota slot back


def test_the_container_quota_rejects_with_a_reason(jobs_stack: tuple[Settings, dict]) -> None:
    settings, keys = jobs_stack
    body = {"image": settings.docker_base_image, "command": ["sleep", "600"]}
    ids = [
        call(settings, keys["bob"], "POST", "/v1/containers", json=body).json()["job_id"]
        for _ in range(3)
    ]
    states = [
        wait_for_job(settings, keys["bob"], i, {"completed", "rejected", "dead_lettered"})
        for i in ids
    ]
    assert [s["state"] for s in states] == ["completed", "completed", "rejected"]
    assert states[2]["failure_reason"] == "too_many_containers"
    rejected = asyncio.run(read_all(settings, REJECTED.physical(settings.namespace)))
    reasons = {r.value for r in rejected if ids[2].encode() in r.value}
    assert len(reasons) == 1 and b"too_many_containers" in reasons.pop()
    for container_id in ids[:2]:
        call(settings, keys["bob"], "DELETE", f"/v1/containers/{container_id}")


def test_missing_image_is_dead_lettered_once_without_retries(
    jobs_stack: tuple[Settings, dict],
) -> None:
    settings, keys = jobs_stack
    body = {"image": "no/such-image:1"}
    job_id = call(settings, keys["alice"], "POST", "/v1/containers", json=body).json()["job_id"]
    job = wait_for_job(settings, keys["alice"], job_id, {"dead_lettered", "completed"})
    assert job["state"] == "dead_lettered" and job["attempts"] == 1
    assert job["failure_reason"].startswith("permanent_error: ")
    released(settings, "alice", job_id)  # the failed start gave its quota slot back
    time.sleep(1)
    letters = [
        d for d in asyncio.run(dlq_admin.read(settings)) if job_id.encode() in (d.value or b"")
    ]
    assert len(letters) == 1
    assert letters[0].reason == "permanent_error" and "image not found" in letters[0].error
    # The letter names the work record the executor read (`tributary dlq retry` sends the
    # job back there), and ClickHouse holds the same origin.
    origin = letters[0].info.origin if letters[0].info else None
    assert origin is not None and origin.topic == WORK_NORMAL.physical(settings.namespace)
    [work] = [
        r
        for r in asyncio.run(read_all(settings, origin.topic))
        if r.offset == origin.offset and r.partition == origin.partition
    ]
    assert job_id.encode() in work.value
    db = settings.clickhouse_database
    sql = (
        f"SELECT origin_topic, origin_partition, origin_offset, reason FROM {db}.dead_letters"
        f" WHERE position(value, '{job_id}') > 0"
    )
    deadline = time.monotonic() + 30
    while not (rows := query(settings, sql)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert rows == [[origin.topic, origin.partition, origin.offset, "permanent_error"]]


def test_a_job_past_its_timeout_fails_each_attempt_then_is_dead_lettered(
    jobs_stack: tuple[Settings, dict],
) -> None:
    settings, keys = jobs_stack
    texts = [f"a longer input sentence, number {i}, " * 8 for i in range(64)]
    body = {"inputs": texts, "timeout_s": 0.01, "max_attempts": 2}
    response = call(settings, keys["alice"], "POST", "/v1/inference", json=body)
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    job = wait_for_job(settings, keys["alice"], job_id, {"completed", "dead_lettered"})
    assert (job["state"], job["attempts"]) == ("dead_lettered", 2), job
    assert job["failure_reason"] == "attempts_exhausted: timed out after 0.01s"
    # Compensation: no in-flight slot in the command agent's table, no GPU pool lease.
    released(settings, "alice", job_id)
    assert live_leases(settings) == 0


def test_engine_down_holds_the_attempt_until_the_engine_is_back(
    jobs_stack: tuple[Settings, dict],
) -> None:
    """An engine that cannot be reached does not spend the job's attempts (three of them
    went in about 3 s, and the start was dead-lettered, while dockerd restarted in the
    faults bench): the attempt waits, and completes once dockerd is back."""
    settings, keys = jobs_stack
    dockerd.stop(settings)
    try:
        body = {"image": settings.docker_base_image, "command": ["sleep", "600"]}
        response = call(settings, keys["alice"], "POST", "/v1/containers", json=body)
        job_id = response.json()["job_id"]
        job = wait_for_job(settings, keys["alice"], job_id, {"active", "retrying", "completed"})
        time.sleep(4)  # longer than three retries took
        job = call(settings, keys["alice"], "GET", f"/v1/jobs/{job_id}").json()
        assert (job["state"], job["attempts"]) == ("active", 1), job
    finally:
        dockerd.start(settings)
    job = wait_for_job(settings, keys["alice"], job_id, {"completed", "dead_lettered"})
    assert (job["state"], job["attempts"]) == ("completed", 1), job
    call(settings, keys["alice"], "DELETE", f"/v1/containers/{job_id}")


def worker_ready(settings: Settings) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{settings.worker_url}/healthz/ready", timeout=10).json()
    return body


def test_the_docker_breaker_opens_parks_starts_and_a_probe_closes_it(
    jobs_stack: tuple[Settings, dict],
) -> None:
    """dockerd stopped: `breaker_failures` (5) failed calls open the circuit (readiness,
    gauge); a start submitted then is parked, not failed; dockerd back, one probe closes
    it, every start completes on its first attempt, and none is dead-lettered. Every
    start's quota slot is given back by its stop."""
    settings, _ = jobs_stack
    users = asyncio.run(api_keys(settings, ["cb-a", "cb-b", "cb-c"]))
    body = {"image": settings.docker_base_image, "command": ["sleep", "600"]}

    def start(user: str) -> str:
        response = call(settings, users[user], "POST", "/v1/containers", json=body)
        assert response.status_code == 202, response.text
        return str(response.json()["container_id"])

    dockerd.stop(settings)
    try:
        failing = [(u, start(u)) for u in ("cb-a", "cb-a", "cb-b", "cb-b", "cb-c")]
        deadline = time.monotonic() + 60
        while "docker" not in worker_ready(settings)["circuits_open"]:
            assert time.monotonic() < deadline, worker_ready(settings)
            time.sleep(0.2)
        metrics = httpx.get(f"{settings.worker_url}/metrics", timeout=10).text
        assert 'tributary_circuit_open{dependency="docker"} 1.0' in metrics
        parked = ("cb-c", start("cb-c"))
        time.sleep(3)  # parked: neither failed nor dead-lettered while the circuit is open
        job = call(settings, users["cb-c"], "GET", f"/v1/jobs/{parked[1]}").json()
        assert job["state"] in {"queued", "active"} and job["attempts"] <= 1, job
    finally:
        dockerd.start(settings)
    for user, container_id in [*failing, parked]:
        job = wait_for_job(settings, users[user], container_id, {"completed", "dead_lettered"}, 120)
        assert (job["state"], job["attempts"]) == ("completed", 1), job  # none spent
    assert worker_ready(settings)["circuits_open"] == []
    for user, container_id in [*failing, parked]:
        call(settings, users[user], "DELETE", f"/v1/containers/{container_id}")
    for user, container_id in [*failing, parked]:
        released(settings, user, container_id, 60)


def test_the_gpu_pool_runs_one_normal_job_at_a_time(jobs_stack: tuple[Settings, dict]) -> None:
    """Four executor actors per tier could run four at once; the pool's 2 slots, one of
    them reserved for high priority, let normal jobs run strictly one after another."""
    settings, _ = jobs_stack
    erin = asyncio.run(api_keys(settings, ["erin"]))["erin"]
    texts = [f"pool sentence {i} " * 8 for i in range(32)]
    ids = submit_inference(settings, erin, texts, 4)
    for job_id in ids:
        assert wait_for_job(settings, erin, job_id, {"completed"}, 120)["attempts"] == 1
    db = settings.clickhouse_database
    names = ", ".join(f"'{j}'" for j in ids)
    sql = (
        f"SELECT toUnixTimestamp64Milli(time), state FROM {db}.jobs_events "
        f"WHERE job_id IN ({names}) AND state IN ('active', 'completed')"
    )
    deadline = time.monotonic() + 30
    while len(steps := query(settings, sql)) < 8 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert len(steps) == 8, steps
    running = peak = 0
    # On a tie the slot was released (completed) before the next one was taken.
    for _, state in sorted(steps, key=lambda s: (s[0], s[1] == "active")):
        running += 1 if state == "active" else -1
        peak = max(peak, running)
    assert peak == 1, sorted(steps)


def test_jobs_and_containers_are_projected_with_rollups(jobs_stack: tuple[Settings, dict]) -> None:
    settings, _ = jobs_stack
    db = settings.clickhouse_database

    def rows(sql: str) -> list:
        deadline = time.monotonic() + 30
        while True:
            found = query(settings, sql)
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.5)

    completed = rows(
        f"SELECT kind, count() FROM {db}.jobs_events WHERE state = 'completed' "
        "GROUP BY kind ORDER BY kind"
    )
    kinds = dict(completed)
    assert kinds.get("inference", 0) >= 1 and kinds.get("container.start", 0) >= 3, completed
    latency = rows(
        f"SELECT kind, quantilesMerge(0.5, 0.9, 0.99)(latency), countMerge(jobs) "
        f"FROM {db}.inference_latency_per_minute WHERE kind = 'inference' GROUP BY kind"
    )
    assert latency and latency[0][2] >= 1 and latency[0][1][0] > 0, latency
    uptime = rows(
        f"SELECT container_id, dateDiff('millisecond', minIfMerge(started), maxIfMerge(stopped)) "
        f"AS ms FROM {db}.container_uptime GROUP BY container_id HAVING ms > 0"
    )
    assert uptime, "no stopped container has an uptime"
    refused = rows(f"SELECT reason, count() FROM {db}.commands_rejected GROUP BY reason")
    # At least this module's one (other modules share the session's database).
    assert dict(refused).get("too_many_containers", 0) >= 1, refused


def test_debounce_keeps_only_the_latest_request_of_a_key(
    jobs_stack: tuple[Settings, dict],
) -> None:
    settings, keys = jobs_stack
    body = {"inputs": ["draft"], "debounce_key": "doc-7", "debounce_ms": 1500}
    first = call(settings, keys["bob"], "POST", "/v1/inference", json=body).json()["job_id"]
    body["inputs"] = ["final text"]
    second = call(settings, keys["bob"], "POST", "/v1/inference", json=body).json()["job_id"]
    replaced = wait_for_job(settings, keys["bob"], first, {"rejected", "completed"})
    assert (replaced["state"], replaced["failure_reason"]) == ("rejected", "debounced")
    kept = wait_for_job(settings, keys["bob"], second, {"completed", "dead_lettered"})
    assert kept["state"] == "completed" and len(kept["result"]["embeddings"]) == 1
    # It ran only after its delay (event time of acceptance + 1.5 s).
    assert kept["updated_ms"] - replaced["updated_ms"] >= 1400
    time.sleep(2)
    # The replaced one never ran, not even when its own delay was over.
    assert call(settings, keys["bob"], "GET", f"/v1/jobs/{first}").json()["state"] == "rejected"


def test_job_steps_are_pushed_over_the_websocket_and_resume_by_cursor(
    jobs_stack: tuple[Settings, dict],
) -> None:
    import orjson
    import websockets

    settings, _ = jobs_stack
    base = settings.gateway_url.replace("http://", "ws://")
    # carol has no earlier jobs: her channel holds exactly this job's steps.
    carol = asyncio.run(api_keys(settings, ["carol"]))["carol"]

    async def steps(cursor: str, until: str) -> list[dict[str, Any]]:
        url = f"{base}/v1/ws?channel=jobs&cursor={cursor}&api_key={carol}"
        out: list[dict[str, Any]] = []
        async with websockets.connect(url) as ws:
            while not out or out[-1]["type"] != until:
                message = orjson.loads(await asyncio.wait_for(ws.recv(), 60))
                if "control" not in message:  # the resume message comes first
                    out.append(message)
        return out

    async def scenario() -> list[dict[str, Any]]:
        listening = asyncio.create_task(steps("0", "job.completed"))
        await asyncio.sleep(0.5)
        texts = [f"t{i}" for i in range(40)]
        response = await asyncio.to_thread(
            call, settings, carol, "POST", "/v1/inference", json={"inputs": texts}
        )
        assert response.status_code == 202
        return await listening

    pushed = asyncio.run(scenario())
    types = [m["type"] for m in pushed]
    assert types[:2] == ["job.queued", "job.active"] and types[-1] == "job.completed", types
    progress = [m["data"]["progress"] for m in pushed if m["type"] == "job.progress"]
    assert progress == sorted(progress) and progress[-1] == 1.0 and len(progress) == 3
    # Resume after "active": the next message is the first progress step.
    resumed = asyncio.run(steps(pushed[1]["cursor"], "job.completed"))
    assert [m["id"] for m in resumed] == [m["id"] for m in pushed[2:]]


def test_a_high_priority_job_overtakes_a_normal_backlog(jobs_stack: tuple[Settings, dict]) -> None:
    settings, _ = jobs_stack
    dave = asyncio.run(api_keys(settings, ["dave"]))["dave"]
    texts = [f"backlog sentence {i} " * 8 for i in range(32)]
    normal = submit_inference(settings, dave, texts, 10)
    high = call(
        settings, dave, "POST", "/v1/inference", json={"inputs": ["urgent"], "priority": "high"}
    ).json()["job_id"]
    done_high = wait_for_job(settings, dave, high, {"completed"})
    done_normal = [wait_for_job(settings, dave, j, {"completed"}, 180) for j in normal]
    # Sent last, finished before most of the normal jobs sent before it.
    later = [j for j in done_normal if j["updated_ms"] > done_high["updated_ms"]]
    assert len(later) >= 5, [j["updated_ms"] - done_high["updated_ms"] for j in done_normal]


# Every topic but the DLQ (it keeps failed records as they were: not always CloudEvents).
TOPICS = [spec for spec in REGISTRY if spec is not DLQ]
# The inputs also hold records other tests wrote straight to them to see them dead-lettered:
# the example subscribers start on these where the test starts, as a new service would.
INPUTS = {INGEST.name, COMMANDS.name}
EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


async def start_groups_at_the_end(settings: Settings, groups: list[str], topics: list[str]) -> None:
    """Commit each group's offsets at the current end of `topics`."""
    for group in groups:
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=group)
        async with started(consumer):
            tps = [
                TopicPartition(t, p)
                for t in topics
                for p in await partitions(settings.kafka_bootstrap, t)
            ]
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            await consumer.commit({tp: ends[tp] for tp in tps})


def desktop_session() -> CloudEvent:
    """A `desktop.session` as the gateway's relay writes one when a viewer leaves."""
    now = int(time.time() * 1000)
    data = DesktopSession(
        container_id=str(uuid.uuid4()),
        session_id=uuid.uuid4().hex,
        role="viewer",
        joined_ms=now - 1000,
        left_ms=now,
        bytes_to_viewer=10,
        bytes_from_viewer=0,
        close_reason="viewer_closed",
    )
    return CloudEvent(
        source="tributary/gateway", type=DESKTOP_SESSION, subject="bob", data=data.model_dump()
    )


def test_the_example_subscribers_read_every_topic_as_valid_cloudevents(
    jobs_stack: tuple[Settings, dict],
) -> None:
    """docs/examples: the Python (confluent-kafka, CloudEvents SDK, schemas from the repository)
    and JavaScript (kafkajs, Ajv, schemas from the gateway) subscribers read what the demo and
    this module's jobs wrote; every record must be a CloudEvent whose data validates against
    the schema its dataschema names."""
    settings, keys = jobs_stack
    ns = settings.namespace
    group = f"{ns}-examples-{uuid.uuid4().hex[:6]}"
    inputs = [spec.physical(ns) for spec in TOPICS if spec.name in INPUTS]
    asyncio.run(start_groups_at_the_end(settings, [f"{group}-py", f"{group}-js"], inputs))
    # After this module's job tests (pytest runs a module in order): they wrote every kind
    # of job step, container state, refusal and dead letter. Then the demo, and one job.
    run_demo(settings, 100, 4, echo=lambda _: None)
    [inference] = submit_inference(settings, keys["bob"], ["a subscriber reads this"], 1)
    wait_for_job(settings, keys["bob"], inference, {"completed"})
    sessions = DESKTOP_SESSIONS.physical(ns)
    if not asyncio.run(read_all(settings, sessions)):  # test_desktops did not run first
        asyncio.run(produce_all(settings.kafka_bootstrap, sessions, [desktop_session()], window=1))
    topics = [spec.physical(ns) for spec in TOPICS]
    counts = {t: len(asyncio.run(read_all(settings, t))) for t in topics}
    assert all(counts.values()), counts
    if not (EXAMPLES / "js" / "node_modules").exists():
        npm = ["npm", "ci", "--prefix", str(EXAMPLES / "js"), "--no-audit", "--no-fund"]
        subprocess.run(npm, check=True)
    common = ["--bootstrap", settings.kafka_bootstrap]
    python = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "subscriber.py"),
            *common,
            "--group",
            f"{group}-py",
            "--schemas",
            str(PUBLISHED),
            *topics,
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    node = subprocess.run(
        [
            "node",
            str(EXAMPLES / "js" / "subscriber.mjs"),
            *common,
            "--group",
            f"{group}-js",
            "--schemas",
            f"{settings.gateway_url}/v1/schemas",
            *topics,
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    expected_types = {
        "demo.click",  # the demo's own type, schema tributary.event
        "tributary.event.counted",
        "inference.requested",
        "job.finished",
        "job.queued",
        "job.completed",
        "job.dead_lettered",
        "job.work",
        "container.running",
        "container.stopped",
        "command.rejected",
    }
    for name, result in (("python", python), ("node", node)):
        assert result.returncode == 0, f"{name}: {result.stdout[-3000:]}{result.stderr[-3000:]}"
        summary = orjson.loads(result.stdout.strip().splitlines()[-1])
        assert summary["invalid_count"] == 0, summary["invalid"]
        for topic in topics:
            if topic not in inputs:  # from the beginning: at least what was there
                assert summary["read"][topic] >= counts[topic], (name, topic, summary["read"])
        # The demo's 100 events went in on the ingest topic since the groups started.
        assert summary["read"][INGEST.physical(ns)] >= 100, (name, summary["read"])
        assert expected_types <= set(summary["types"]), (name, summary["types"])
