"""The command agent's limits decide in event time: the same log into a fresh app decides the same.

One log of inference commands for two users (rate windows and the in-flight quota both
bind) with `job.finished` reports between them, produced with fixed record timestamps
into two namespaces. A fresh worker on each decides; the decisions must be identical,
and the log must have produced both acceptances and each kind of refusal.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from infra.local import kafka, stack
from schemas.envelope import CloudEvent, to_kafka
from schemas.jobs import INFERENCE_REQUESTED, JOB_FINISHED
from schemas.topics import COMMANDS, JOBS
from streams.jobs import admission
from streams.jobs.admission import Quotas, UserState
from tests.conftest import make_settings
from tests.integration.kafka_helpers import read_all
from tributary.limits import parse_windows
from tributary.settings import Settings

pytestmark = pytest.mark.integration

WORKER = next(a for a in stack.APPS if a.name == "worker")
# The event time of the log's first record: the start of the hour before this one. Decisions
# depend only on times relative to it, not on the wall clock. Not a fixed date: records
# older than the topics' 7-day retention are deleted by the broker's next retention check
# (every 5 min), which emptied the commands topic under a worker now and then once the fixed
# date of before (2026-09-21) was more than 7 days old.
T0 = (int(time.time()) // 3600 - 1) * 3_600_000
RATE = "4/s,9/m"
MAX_IN_FLIGHT = 3


def command_log() -> list[tuple[int, CloudEvent]]:
    """(timestamp ms, command): 14 requests per user.

    ann: 50 ms apart, each finishing before the next: the rate window binds.
    ben: 1 s apart, every third finishing two requests back: the in-flight quota binds.
    """
    log: list[tuple[int, CloudEvent]] = []
    for user, gap_ms, finish_every in (("ann", 50, 1), ("ben", 1000, 3)):
        for i in range(14):
            at = T0 + i * gap_ms
            job_id = f"{user}-job-{i}"
            when = datetime.fromtimestamp(at / 1000, UTC)
            log.append(
                (
                    at,
                    CloudEvent(
                        id=job_id,
                        source="tests",
                        type=INFERENCE_REQUESTED,
                        subject=user,
                        time=when,
                        data={"inputs": ["x"], "max_attempts": 1},
                    ),
                )
            )
            if i % finish_every == finish_every - 1:
                done = f"{user}-job-{i - finish_every + 1}"
                log.append(
                    (
                        at,
                        CloudEvent(
                            id=f"{done}-finished",
                            source="tests",
                            type=JOB_FINISHED,
                            subject=user,
                            time=when,
                            data={"job_id": done, "kind": "inference", "outcome": "completed"},
                        ),
                    )
                )
    return log


async def produce(settings: Settings, log: list[tuple[int, CloudEvent]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for at, event in log:
            key, value, headers = to_kafka(event)
            await producer.send_and_wait(
                COMMANDS.physical(settings.namespace),
                value,
                key=key,
                headers=headers,
                timestamp_ms=at,
            )
    finally:
        await producer.stop()


def decisions(settings: Settings, expected: int, timeout_s: float = 90) -> dict[str, str]:
    """job id -> `queued` or `rejected:<reason>`, once every request has its decision."""
    deadline = time.monotonic() + timeout_s
    out: dict[str, str] = {}
    while time.monotonic() < deadline:
        out = {}
        for record in asyncio.run(read_all(settings, JOBS.physical(settings.namespace))):
            data = orjson.loads(record.value)
            if data["state"] == "queued":
                out.setdefault(data["job_id"], "queued")
            elif data["state"] == "rejected":
                out.setdefault(data["job_id"], f"rejected:{data['reason']}")
        if len(out) >= expected:
            return out
        time.sleep(0.5)
    raise AssertionError(f"only {len(out)} of {expected} decisions")


def run_fresh_app(services: Settings, log: list[tuple[int, CloudEvent]]) -> dict[str, str]:
    settings = make_settings(
        command_rate_limits=RATE,
        max_in_flight_jobs=MAX_IN_FLIGHT,
        # No side effects: executors find neither engine nor Triton (and give up at once).
        docker_host="unix:///nonexistent/docker.sock",
        triton_url="127.0.0.1:9",
    )
    kafka.ensure_topics(settings)
    asyncio.run(produce(settings, log))
    proc = stack.managed(settings, WORKER)
    try:
        stack.start_app(settings, WORKER)
        requests = sum(1 for _, e in log if e.type == INFERENCE_REQUESTED)
        return decisions(settings, requests)
    finally:
        proc.stop(timeout_s=20)


def expected_decisions(log: list[tuple[int, CloudEvent]]) -> dict[str, str]:
    """The pure rules applied to the log in event time: what the app must have decided."""
    rules = Quotas(parse_windows(RATE), MAX_IN_FLIGHT, 4)
    states: dict[str, UserState] = {}
    out: dict[str, str] = {}
    for at, event in log:
        state = states.setdefault(event.subject, UserState())
        if event.type == JOB_FINISHED:
            admission.finished(state, event.data["job_id"], None, "completed")
            continue
        verdict = admission.admit_inference(state, rules, event.id, at)
        out[event.id] = "queued" if verdict.accepted else f"rejected:{verdict.reason}"
    return out


def test_the_same_command_log_decides_the_same_in_a_fresh_app(services: Settings) -> None:
    log = command_log()
    first = run_fresh_app(services, log)
    replayed = run_fresh_app(services, log)
    assert first == replayed
    # And it is the event-time answer (decisions by wall clock would refuse ben's too).
    assert first == expected_decisions(log)
    outcomes = set(first.values())
    assert {"queued", "rejected:rate_limited", "rejected:too_many_jobs_in_flight"} <= outcomes, (
        first
    )
