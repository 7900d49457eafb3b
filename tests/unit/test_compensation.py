"""Every reservation is released on every failure path, through the real agents' decisions.

The command agent reserves (an inference job's in-flight slot, a container's quota slot);
the executor decides each attempt's outcome; its `job.finished` goes back to the command
agent, which releases. Records flow between the two as they would through the topics (the
retry scheduler's hand-back included), with no services: what is checked is the decisions.
The GPU pool slot is a lease in Redis released when the attempt ends, also by a timeout or
a crash (`tests/integration/test_gpu_pool.py`).
"""

from __future__ import annotations

from typing import Any

from aiokafka.structs import ConsumerRecord

from schemas import headers as h
from schemas.envelope import CloudEvent, to_kafka
from schemas.jobs import CONTAINER_START, INFERENCE_REQUESTED, Job
from streams.jobs import emit
from streams.jobs.commands import Commands
from streams.jobs.executor import Executor
from streams.runtime import state
from streams.runtime.outputs import Effect, Output
from tributary.settings import Settings

SETTINGS = Settings(namespace="unit", dedup_ttl_s=60, command_rate_limits="100/s")


class Flow:
    """The command agent and one executor tier, with records handed between them."""

    def __init__(self) -> None:
        self.commands = Commands(SETTINGS)
        self.executor = Executor(SETTINGS, "normal")
        self.at_commands = state.Tables(self.commands.tables)
        self.at_executor = state.Tables(self.executor.tables)
        self.offset = 0
        self.now = 1_000
        self.dead_lettered = 0

    def record(self, topic: str, key: bytes | None, value: bytes | None, headers: Any) -> Any:
        self.offset += 1
        self.now += 10
        return ConsumerRecord(
            topic, 0, self.offset, self.now, 0, key, value, None, 0, 0, tuple(headers)
        )

    def command(self, event_type: str, data: dict[str, Any], command_id: str) -> list[Effect]:
        event = CloudEvent(id=command_id, source="t", type=event_type, subject="u", data=data)
        return self.deliver(self.record(self.commands.source, *to_kafka(event)))

    def result(self, effect: Effect, **fields: Any) -> list[Effect]:
        """The attempt runner's report of `effect`'s attempt."""
        event = emit.attempt_result(effect.job, self.now, **fields)
        return self.deliver(self.record(self.executor.source, *to_kafka(event)))

    def deliver(self, record: Any) -> list[Effect]:
        """`record` to the agent reading its topic, and what it writes on, until effects."""
        outs: list[Output | Effect] = []
        if record.topic == self.commands.source:
            outs += self.commands.process(record, self.at_commands)
            self.at_commands.apply()
        else:
            outs += self.executor.process(record, self.at_executor)
            self.at_executor.apply()
        effects: list[Effect] = [o for o in outs if isinstance(o, Effect)]
        for out in outs:
            if isinstance(out, Output):
                effects += self.route(out)
        return effects

    def route(self, out: Output) -> list[Effect]:
        """An output to whoever reads its topic (an older edition's copy is skipped there)."""
        if out.topic == self.executor.dlq:
            self.dead_lettered += 1
            return []
        if out.topic == self.executor.routes.retry:  # the scheduler hands it back when due
            target = dict(out.headers)[h.TARGET].decode()
            return self.deliver(self.record(target, out.key, out.value, out.headers))
        if out.topic in (self.executor.source, self.commands.source):
            return self.deliver(self.record(out.topic, out.key, out.value, out.headers))
        return []  # jobs.events, containers.events, ...: for subscribers

    def user(self) -> dict[str, Any]:
        return dict(self.at_commands[self.commands.tables[0]].get("u") or {})


def test_an_inference_job_that_times_out_every_attempt_frees_its_in_flight_slot() -> None:
    flow = Flow()
    effects = flow.command(INFERENCE_REQUESTED, {"inputs": ["x"]}, "j1")
    assert flow.user()["in_flight"] == ["j1"]  # reserved
    attempts = 0
    while effects:
        [effect] = effects
        attempts += 1
        effects = flow.result(effect, error=f"timed out after {effect.job.timeout_s:g}s")
    assert attempts == Job.model_fields["max_attempts"].default
    assert flow.dead_lettered == 1
    assert flow.user()["in_flight"] == []  # released by the dead letter's job.finished


def test_a_container_that_cannot_start_frees_its_quota_slot() -> None:
    flow = Flow()
    [effect] = flow.command(CONTAINER_START, {"image": "no-such-image"}, "c1")
    assert list(flow.user()["containers"]) == ["c1"]  # reserved
    assert flow.result(effect, error="no such image", permanent=True) == []
    assert flow.dead_lettered == 1
    assert flow.user().get("containers", {}) == {}


def test_a_completed_job_frees_its_slot_and_a_retried_one_keeps_it_until_then() -> None:
    flow = Flow()
    [effect] = flow.command(INFERENCE_REQUESTED, {"inputs": ["x"]}, "j2")
    [again] = flow.result(effect, error="engine unreachable")  # retried: still reserved
    assert flow.user()["in_flight"] == ["j2"] and again.job.attempt == 2
    assert flow.result(again, outcome="completed", result={"embeddings": [[0.1]]}) == []
    assert flow.user()["in_flight"] == []
