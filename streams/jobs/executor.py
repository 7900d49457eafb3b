"""The executors' decisions: accepted jobs → attempts → outcomes (pure, per record).

One processor per priority tier, each on its own work topic and transactional loop, so a
backlog of normal jobs never delays high ones. It decides; `streams/jobs/runners/attempts.py`
acts. Per work record:

1. `job.work`: is this attempt new? If so the `attempts` table records it as running, and
   the loop commits that before it hands the attempt to the effect step (an `Effect`):
   the decision is durable before Docker or Triton is called, and no transaction is open
   while they work. A work record seen before (the retry scheduler is at-least-once) is
   dropped; one retried from the DLQ by an operator starts a fresh set of attempts.
2. `job.result` (written by the effect step to the same partition): the attempt is over.
   A completed one emits `completed` and reports `job.finished` on `commands`, where the
   command agent releases the job's quota (and says what became of a container); a failed
   one emits `failed`, then `retrying` (onto the retry topic, due after backoff with
   jitter) or `dead_lettered` (onto the DLQ with the job, the error and every attempt).
   A result for an attempt that is not running any more (a duplicate) is dropped.

A worker that takes a partition over runs again the attempts its table says are running
(`resume`): their owner died between the decision and the result. Docker starts are
idempotent by name and an embedding is the same when computed twice, so a second run has
no second effect; its result is decided once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
from pydantic import ValidationError

from schemas import contracts, tables
from schemas import headers as h
from schemas.dead_letters import DeadLetter, Origin
from schemas.envelope import EnvelopeError, from_kafka, to_kafka
from schemas.jobs import JOB_RESULT, AttemptResult, ContainerSpec, Job, JobState, StopSpec
from schemas.topics import COMMANDS, DLQ, JOBS, RETRY, WORK_TIERS
from streams.jobs import emit
from streams.jobs.retries import Backoff, GiveUp, after_failure
from streams.runtime import outputs, state
from streams.runtime.outputs import Effect, Output, Record
from tributary.settings import Settings

log = structlog.get_logger(__name__)

_SWEPT = "~swept"  # the table's bookkeeping key (job ids are UUIDs)


@dataclass(frozen=True)
class Routes:
    """Where an executor's decisions go: physical topic names."""

    jobs: str
    commands: str
    retry: str
    dlq: str
    tiers: dict[str, str]

    @classmethod
    def of(cls, namespace: str) -> Routes:
        return cls(
            jobs=JOBS.physical(namespace),
            commands=COMMANDS.physical(namespace),
            retry=RETRY.physical(namespace),
            dlq=DLQ.physical(namespace),
            tiers={tier: spec.physical(namespace) for tier, spec in WORK_TIERS.items()},
        )


class Executor:
    """Decides one priority tier's attempts: start, complete, retry or dead-letter."""

    def __init__(self, settings: Settings, tier: str) -> None:
        ns = settings.namespace
        self.name = f"executor-{tier}"
        self.source = WORK_TIERS[tier].physical(ns)
        self.attempts = tables.job_attempts(tier)
        self.tables: tuple[str, ...] = (self.attempts,)
        self.routes = Routes.of(ns)
        self.dlq = self.routes.dlq
        self.backoff = Backoff(settings.retry_base_ms, settings.retry_cap_ms)
        self.ttl_ms = settings.dedup_ttl_s * 1000

    def process(self, record: Record, tables_: state.Tables) -> list[Output | Effect]:
        if contracts.superseded(record.headers):
            return []  # an older version's copy: its current one is beside it
        attempts = tables_[self.attempts]
        headers = dict(record.headers or ())
        if headers.get(h.CE_TYPE) == JOB_RESULT.encode():
            return self.finish(record, tables_)
        try:
            work = Job.model_validate_json(record.value or b"")
        except ValidationError as exc:
            tables_.count("dead_lettered")
            return [outputs.dead_lettered(record, self.dlq, reason="invalid_job", error=str(exc))]
        job = start(attempts.get(work.job_id), work, retried=h.RETRIED_FROM in headers)
        if job is None:
            tables_.count("duplicate")
            return []
        origin = Origin(topic=record.topic, partition=record.partition, offset=record.offset)
        attempts[job.job_id] = running(job, origin, record.timestamp)
        tables_.count("started")
        return [Effect(job, record.partition)]

    def finish(self, record: Record, tables_: state.Tables) -> list[Output | Effect]:
        """An attempt's result: what it emits, once."""
        attempts = tables_[self.attempts]
        try:
            result = AttemptResult.model_validate(from_kafka(record.value, record.headers).data)
        except (EnvelopeError, ValidationError) as exc:
            tables_.count("dead_lettered")
            letter = outputs.dead_lettered(
                record, self.dlq, reason="invalid_result", error=str(exc)
            )
            return [letter]
        entry = attempts.get(result.job.job_id)
        if not is_running(entry, result.job.attempt):
            tables_.count("duplicate")
            return []
        job = Job.model_validate(entry["job"])
        attempts[job.job_id] = {"attempt": job.attempt, "at": record.timestamp}
        if result.outcome is not None:
            tables_.count("completed")
            return completed(job, result, self.routes)
        error = result.error or "failed"
        origin = Origin.model_validate(entry["origin"])
        out = failed(job, error, result.permanent, result.at_ms, self.backoff, origin, self.routes)
        tables_.count("dead_lettered" if any(o.topic == self.dlq for o in out) else "retrying")
        return list(out)

    def tidy(self, tables_: state.Tables, now_ms: int) -> None:
        forget_finished(tables_[self.attempts], now_ms, self.ttl_ms)

    def resume(self, partition: int, tables_: state.Tables) -> list[Effect]:
        """The attempts a previous owner started and did not finish: run them again."""
        return [
            Effect(Job.model_validate(entry["job"]), partition)
            for key, entry in tables_[self.attempts].items()
            if key != _SWEPT and isinstance(entry, dict) and "job" in entry
        ]


# -- the rules, one function each --------------------------------------------------------


def start(entry: dict[str, Any] | None, job: Job, retried: bool) -> Job | None:
    """The attempt to run for work record `job`, or None when it ran already.

    `entry`: the job's row in the attempts table. A record retried from the DLQ by an
    operator starts a fresh set of attempts after the last one."""
    done = int(entry["attempt"]) if entry else 0
    if retried:
        return job.model_copy(update={"attempt": done + 1, "max_attempts": done + job.max_attempts})
    return None if done >= job.attempt else job


def running(job: Job, origin: Origin, at_ms: int) -> dict[str, Any]:
    """The attempts table's row for a started attempt: what a takeover needs to run it."""
    return {
        "attempt": job.attempt,
        "job": job.model_dump(mode="json"),
        "origin": origin.model_dump(),
        "at": at_ms,
    }


def is_running(entry: dict[str, Any] | None, attempt: int) -> bool:
    return entry is not None and "job" in entry and int(entry["attempt"]) == attempt


def completed(job: Job, result: AttemptResult, routes: Routes) -> list[Output | Effect]:
    """`completed` with the result, and `job.finished` for the command agent."""
    assert result.outcome is not None
    at = result.at_ms
    done = emit.job_event(job, JobState.COMPLETED, at, result=result.result)
    fields: dict[str, Any] = {}
    if isinstance(job.spec, ContainerSpec):
        info = result.result or {}
        fields = {
            "image": job.spec.image,
            "engine_id": info.get("engine_id"),
            "name": info.get("name"),
            "address": info.get("address"),
            "display": job.spec.display,
        }
    elif isinstance(job.spec, StopSpec):
        fields = {"reason": job.spec.reason}
    finished = emit.job_finished(job, result.outcome, at, **fields)
    return [*outputs.event(routes.jobs, done), *outputs.event(routes.commands, finished)]


def failed(
    job: Job,
    error: str,
    permanent: bool,
    at_ms: int,
    backoff: Backoff,
    origin: Origin,
    routes: Routes,
) -> list[Output]:
    """`failed`, then `retrying` (the next attempt on the retry topic) or `dead_lettered`
    (the job on the DLQ, and `job.finished` for the command agent)."""
    out = outputs.event(
        routes.jobs, emit.job_event(job, JobState.FAILED, at_ms, reason=error, permanent=permanent)
    )
    step = after_failure(job, error, permanent, at_ms, backoff)
    if isinstance(step, GiveUp):
        dead = step.job
        # "<why dead>: <last error>", so GET /v1/jobs says what actually went wrong.
        reason = f"{step.reason}: {error}"
        out += outputs.event(
            routes.jobs, emit.job_event(dead, JobState.DEAD_LETTERED, at_ms, reason=reason)
        )
        # The dead job as a work record, at the work record's position: `tributary dlq
        # retry` sends it back there.
        key, value, headers = to_kafka(emit.work(dead, at_ms))
        letter = DeadLetter.of(step.reason, error, origin)
        out.append(Output(routes.dlq, value, key, letter.headers(headers)))
        out += outputs.event(routes.commands, emit.job_finished(job, "dead_lettered", at_ms))
        return out
    out += outputs.event(
        routes.jobs,
        emit.job_event(step.job, JobState.RETRYING, at_ms, due_ms=step.due_ms, reason=error),
    )
    target = routes.tiers[job.priority]
    return out + outputs.scheduled(routes.retry, emit.work(step.job, at_ms), step.due_ms, target)


def forget_finished(attempts: state.Table, now_ms: int, ttl_ms: int) -> None:
    """Forget finished attempts recorded more than two TTLs before `now_ms` (a work record
    seen again later than that would run again); at most one sweep per tenth of a TTL.
    Running attempts are kept whatever their age."""
    if now_ms - int(attempts.get(_SWEPT, 0)) < ttl_ms // 10:
        return
    for key, entry in attempts.items():
        if key == _SWEPT or not isinstance(entry, dict) or "job" in entry:
            continue
        if now_ms - int(entry.get("at", 0)) > 2 * ttl_ms:
            del attempts[key]
    attempts[_SWEPT] = now_ms
