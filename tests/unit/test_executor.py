"""The executor's decisions, record by record, without services: which attempt runs, what
a finished or failed attempt emits, when it retries or is dead-lettered, what a takeover
runs again, and what the command agent makes of the engine's reports."""

from __future__ import annotations

from typing import Any

from aiokafka.structs import ConsumerRecord

from schemas import contracts
from schemas import headers as h
from schemas.dead_letters import DeadLetter
from schemas.envelope import CloudEvent, from_kafka, to_kafka
from schemas.jobs import (
    CONTAINER_GONE,
    CONTAINER_START,
    CONTAINERS_OBSERVED,
    ContainerSpec,
    InferenceSpec,
    Job,
    JobKind,
    ObservedContainer,
)
from streams.jobs import emit
from streams.jobs.commands import Commands
from streams.jobs.executor import Executor
from streams.runtime import state
from streams.runtime.outputs import Effect, Output
from tributary.settings import Settings

SETTINGS = Settings(
    namespace="unit",
    dedup_ttl_s=60,
    retry_base_ms=1000,
    orphan_grace_s=10,
    command_rate_limits="100/s",
)


def job(attempt: int = 1, max_attempts: int = 3, **kw: Any) -> Job:
    return Job(
        job_id="j1",
        user_id="u",
        kind=kw.pop("kind", JobKind.INFERENCE),
        attempt=attempt,
        max_attempts=max_attempts,
        accepted_ms=1,
        spec=kw.pop("spec", InferenceSpec(model="minilm", inputs=["a"])),
        **kw,
    )


def record(
    event: CloudEvent, topic: str, offset: int, extra: dict[str, str] | None = None
) -> ConsumerRecord:
    key, value, headers = to_kafka(event, extra)
    return ConsumerRecord(
        topic, 2, offset, 1_000 + offset, 0, key, value, None, len(key), len(value), tuple(headers)
    )


def types(outs: list[Output | Effect]) -> list[tuple[str, str]]:
    return [
        (o.topic, dict(o.headers).get(h.CE_TYPE, b"").decode())
        for o in outs
        if isinstance(o, Output)
    ]


def setup() -> tuple[Executor, state.Tables]:
    executor = Executor(SETTINGS, "normal")
    return executor, state.Tables((*executor.tables,))


def commit(t: state.Tables) -> None:
    t.apply()


def test_a_new_attempt_is_recorded_running_and_handed_over_once() -> None:
    executor, t = setup()
    work = record(emit.work(job(), 5), executor.source, 7)
    [effect] = executor.process(work, t)
    assert effect == Effect(job(), partition=2)
    commit(t)
    assert executor.process(work, t) == []  # the retry scheduler delivered it twice
    # A takeover runs again what the table says is running, and nothing else.
    assert executor.resume(2, t) == [Effect(job(), 2)]


def test_a_completed_attempt_emits_completed_and_finished_once() -> None:
    executor, t = setup()
    executor.process(record(emit.work(job(), 5), executor.source, 7), t)
    commit(t)
    result = emit.attempt_result(job(), 900, outcome="completed", result={"embeddings": [[1.0]]})
    outs = executor.process(record(result, executor.source, 8), t)
    assert types(outs) == [
        (executor.routes.jobs, "job.completed"),
        (executor.routes.commands, "job.finished"),
    ]
    completed = from_kafka(outs[0].value, outs[0].headers)  # type: ignore[union-attr]
    assert completed.data["result"] == {"embeddings": [[1.0]]}
    assert completed.data["at_ms"] == 900  # when the effect ended, not when decided
    commit(t)
    assert executor.process(record(result, executor.source, 9), t) == []  # a second copy
    assert executor.resume(2, t) == []


def test_a_failed_attempt_retries_with_backoff_then_is_dead_lettered() -> None:
    executor, t = setup()
    executor.process(record(emit.work(job(max_attempts=2), 5), executor.source, 7), t)
    commit(t)
    failed = emit.attempt_result(job(max_attempts=2), 2_000, error="triton unreachable")
    outs = executor.process(record(failed, executor.source, 8), t)
    assert types(outs) == [
        (executor.routes.jobs, "job.failed"),
        (executor.routes.jobs, "job.retrying"),
        (executor.routes.retry, "job.work"),
        (executor.routes.retry, "job.work"),  # version 1 beside version 2
    ]
    retry = outs[2]
    assert isinstance(retry, Output)
    schedule = dict(retry.headers)
    assert schedule[h.TARGET] == executor.source.encode()
    assert 2_500 <= int(schedule[h.DUE_MS]) <= 3_000  # base 1 s, equal jitter
    second = Job.model_validate(from_kafka(retry.value, retry.headers).data)
    assert second.attempt == 2 and second.history[0].error == "triton unreachable"
    commit(t)
    [_] = executor.process(record(emit.work(second, 3_000), executor.source, 9), t)
    commit(t)
    last = emit.attempt_result(second, 4_000, error="triton unreachable")
    outs = executor.process(record(last, executor.source, 10), t)
    assert types(outs) == [
        (executor.routes.jobs, "job.failed"),
        (executor.routes.jobs, "job.dead_lettered"),
        (executor.routes.dlq, "job.work"),
        (executor.routes.commands, "job.finished"),
    ]
    letter = DeadLetter.from_headers(outs[2].headers)  # type: ignore[union-attr]
    assert letter is not None and letter.reason == "attempts_exhausted"
    # The origin is the work record the attempt came from, for `tributary dlq retry`.
    assert (letter.origin.topic, letter.origin.partition, letter.origin.offset) == (
        executor.source,
        2,
        9,
    )


def test_a_permanent_error_is_dead_lettered_at_once() -> None:
    executor, t = setup()
    executor.process(record(emit.work(job(), 5), executor.source, 7), t)
    commit(t)
    bad = emit.attempt_result(job(), 2_000, error="image not found", permanent=True)
    outs = executor.process(record(bad, executor.source, 8), t)
    assert (executor.routes.dlq, "job.work") in types(outs)
    assert (executor.routes.retry, "job.work") not in types(outs)


def test_a_job_retried_from_the_dlq_starts_a_fresh_set_of_attempts() -> None:
    executor, t = setup()
    executor.process(record(emit.work(job(max_attempts=1), 5), executor.source, 7), t)
    commit(t)
    executor.process(
        record(emit.attempt_result(job(max_attempts=1), 9, error="x"), executor.source, 8), t
    )
    commit(t)
    again = record(
        emit.work(job(max_attempts=1), 5), executor.source, 20, {h.RETRIED_FROM: "dlq:0:1"}
    )
    [effect] = executor.process(again, t)
    assert isinstance(effect, Effect)
    assert (effect.job.attempt, effect.job.max_attempts) == (2, 2)


def test_a_container_start_reports_its_engine_id_to_the_command_agent() -> None:
    executor, t = setup()
    spec = ContainerSpec(container_id="c1", image="busybox")
    start = job(kind=JobKind.CONTAINER_START, spec=spec)
    executor.process(record(emit.work(start, 5), executor.source, 7), t)
    commit(t)
    done = emit.attempt_result(
        start, 9, outcome="running", result={"engine_id": "abc", "name": "n"}
    )
    outs = executor.process(record(done, executor.source, 8), t)
    finished = outs[-1]
    assert isinstance(finished, Output)
    data = from_kafka(finished.value, finished.headers).data
    assert (data["outcome"], data["engine_id"], data["image"]) == ("running", "abc", "busybox")


def test_finished_attempts_are_forgotten_after_two_ttls_running_ones_never() -> None:
    executor, t = setup()
    executor.process(record(emit.work(job(), 5), executor.source, 7), t)
    other = job().model_copy(update={"job_id": "j2"})
    executor.process(record(emit.work(other, 5), executor.source, 8), t)
    executor.process(
        record(emit.attempt_result(other, 9, outcome="completed"), executor.source, 9), t
    )
    commit(t)
    executor.tidy(t, 1_000 + 3 * 60_000)
    commit(t)
    table = t[executor.attempts]
    assert table.get("j1") is not None and table.get("j2") is None


# -- the command agent and the engine's reports -------------------------------------------


def command(event_type: str, data: dict[str, Any], event_id: str, at_ms: int) -> ConsumerRecord:
    ev = CloudEvent(id=event_id, source="t", type=event_type, subject="u", data=data)
    key, value, headers = to_kafka(ev)
    return ConsumerRecord(
        "unit.commands", 0, 0, at_ms, 0, key, value, None, len(key), len(value), tuple(headers)
    )


def started(agent: Commands, t: state.Tables, container_id: str, at_ms: int) -> None:
    agent.process(command(CONTAINER_START, {"image": "busybox"}, container_id, at_ms), t)
    start = Job(
        job_id=container_id,
        user_id="u",
        kind=JobKind.CONTAINER_START,
        accepted_ms=at_ms,
        spec=ContainerSpec(container_id=container_id, image="busybox"),
    )
    finished = emit.job_finished(start, "running", at_ms, engine_id="e1", image="busybox")
    key, value, headers = to_kafka(finished)
    record_ = ConsumerRecord(
        "unit.commands", 0, 1, at_ms, 0, key, value, None, len(key), len(value), tuple(headers)
    )
    outs = agent.process(record_, t)
    assert [dict(o.headers)[h.CE_TYPE] for o in outs] == [b"container.running"]
    t.apply()


def held(t: state.Tables) -> dict[str, str]:
    return dict(t["user-state"].get("u", {}).get("containers", {}))


def test_a_container_killed_outside_is_exited_with_its_reason_and_its_slot_freed() -> None:
    agent = Commands(SETTINGS)
    t = state.Tables(agent.tables)
    started(agent, t, "c1", 1_000)
    gone = {"container_id": "c1", "reason": "oom", "exit_code": 137, "at_ms": 2_000}
    outs = agent.process(command(CONTAINER_GONE, gone, "g1", 2_000), t)
    [exited] = outs
    data = from_kafka(exited.value, exited.headers).data
    assert (exited.topic, data["state"], data["reason"], data["exit_code"]) == (
        agent.containers,
        "exited",
        "oom",
        137,
    )
    t.apply()
    assert held(t) == {}
    # The same report again (another worker's watch) decides nothing.
    assert agent.process(command(CONTAINER_GONE, gone, "g2", 2_001), t) == []


def observed(at_ms: int, *containers: ObservedContainer) -> dict[str, Any]:
    return {"containers": [c.model_dump() for c in containers], "at_ms": at_ms}


def test_a_reconcile_stops_orphans_and_expired_containers_and_closes_vanished_ones() -> None:
    agent = Commands(SETTINGS)
    t = state.Tables(agent.tables)
    started(agent, t, "old", 1_000)
    started(agent, t, "idle", 1_000)
    started(agent, t, "lost", 1_000)
    now = 100_000
    sweep = observed(
        now,
        ObservedContainer(container_id="old", running=True, created_ms=1_000, max_lifetime_s=60),
        ObservedContainer(
            container_id="idle", running=True, created_ms=1_000, idle_ms=40_000, idle_timeout_s=30
        ),
        ObservedContainer(container_id="orphan", running=True, created_ms=now - 60_000),
        ObservedContainer(container_id="young", running=True, created_ms=now - 1_000),
    )
    outs = agent.process(command(CONTAINERS_OBSERVED, sweep, "o1", now), t)
    stops = {}
    exited = {}
    for o in outs:
        ev = from_kafka(o.value, o.headers)
        if not contracts.is_current(ev.dataschema):
            continue  # the version 1 copy beside it
        if ev.type == "job.work":
            stops[ev.data["spec"]["container_id"]] = ev.data["spec"]["reason"]
        elif ev.type == "container.exited":
            exited[ev.data["container_id"]] = ev.data["reason"]
    # "young" is within the grace: a start may still be recording it.
    assert stops == {"old": "lifetime", "idle": "idle", "orphan": "orphan"}
    assert exited == {"lost": "vanished"}
    t.apply()
    assert held(t) == {"old": "stopping", "idle": "stopping"}
