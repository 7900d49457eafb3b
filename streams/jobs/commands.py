"""The command agent: the single writer of each user's job and container state.

`commands` (keyed by user) → dedup → authoritative limits in event time (pure
`streams.jobs.admission`) → `jobs.events` (queued / rejected), `commands.rejected`, and the
accepted job on its priority tier's work topic, or on the retry topic while a
debounce delay runs. Executors report back on `commands` (`job.finished`), and so does
the engine (`container.gone`, `containers.observed`: `streams.jobs.container_rules`), so quota
releases are ordered with the requests in one log and a replay decides the same. It is
the one writer of `containers.events`: a container's states follow that same order.
Pure per record (`process`); the transactional loop (`streams.runtime.transactional`) makes
the table writes, the outputs and the input offset one Kafka transaction.
"""

from __future__ import annotations

import structlog
from pydantic import ValidationError

from schemas import contracts, tables
from schemas import headers as h
from schemas.envelope import CloudEvent, EnvelopeError, from_kafka
from schemas.jobs import (
    CONTAINER_GONE,
    CONTAINER_START,
    CONTAINER_STOP,
    CONTAINERS_OBSERVED,
    INFERENCE_REQUESTED,
    JOB_DUE,
    JOB_FINISHED,
    ContainerGone,
    ContainerIn,
    ContainersObserved,
    ContainerSpec,
    ContainerStatus,
    ContainerStop,
    InferenceIn,
    InferenceSpec,
    Job,
    JobFinished,
    JobKind,
    JobState,
    StopReason,
    StopSpec,
)
from schemas.topics import COMMANDS, CONTAINERS, DLQ, JOBS, REJECTED, RETRY, WORK_TIERS
from streams.events.sequencing import derived_id
from streams.jobs import admission, container_rules, emit
from streams.jobs.admission import Quotas, UserState, Verdict
from streams.jobs.container_rules import Exited
from streams.runtime import outputs, state
from streams.runtime.outputs import Output, Record
from tributary.limits import parse_windows
from tributary.settings import Settings

log = structlog.get_logger(__name__)


def quotas(settings: Settings) -> Quotas:
    return Quotas(
        windows=parse_windows(settings.command_rate_limits),
        max_in_flight_jobs=settings.max_in_flight_jobs,
        max_running_containers=settings.max_running_containers,
    )


class Commands:
    """Decides each user's commands in order: admit or refuse, queue, release quotas."""

    name = "commands"
    tables: tuple[str, ...] = (tables.USER_STATE, tables.SEEN_COMMANDS)

    def __init__(self, settings: Settings) -> None:
        ns = settings.namespace
        self.source = COMMANDS.physical(ns)
        self.jobs = JOBS.physical(ns)
        self.containers = CONTAINERS.physical(ns)
        self.rejected = REJECTED.physical(ns)
        self.retry = RETRY.physical(ns)
        self.dlq = DLQ.physical(ns)
        self.tiers = {name: spec.physical(ns) for name, spec in WORK_TIERS.items()}
        self.ttl_ms = settings.dedup_ttl_s * 1000
        self.rules = quotas(settings)
        self.lifetime_s = settings.container_max_lifetime_s
        self.idle_s = settings.container_idle_s
        self.grace_ms = int(settings.orphan_grace_s * 1000)

    def process(self, record: Record, tables_: state.Tables) -> list[Output]:
        at_ms = record.timestamp
        if contracts.superseded(record.headers):
            return []  # an older version's copy of a report: its current one is beside it
        users = tables_[tables.USER_STATE]
        if dict(record.headers or ()).get(h.CE_TYPE) == JOB_DUE.encode():
            return self.due(record, tables_)
        try:
            command = from_kafka(record.value, record.headers)
            seen = tables_[tables.SEEN_COMMANDS]
            seen_key = f"{command.subject}/{command.id}"
            # A reconcile's report is a fresh view each time, and deciding one twice is
            # harmless: not remembered (there is one per user per sweep).
            once = command.type != CONTAINERS_OBSERVED
            if once and state.seen_before(seen, seen_key, at_ms, self.ttl_ms):
                tables_.count("duplicate")
                return []
            user_state = UserState.from_json(users.get(command.subject))
            out = self.decide(command, user_state, at_ms)
        except (EnvelopeError, ValidationError, ValueError, KeyError) as exc:
            tables_.count("dead_lettered")
            return [
                outputs.dead_lettered(record, self.dlq, reason="invalid_command", error=str(exc))
            ]
        users[command.subject] = user_state.to_json()
        if once:
            seen[seen_key] = at_ms
        tables_.count("decided")
        return out

    def tidy(self, tables_: state.Tables, now_ms: int) -> None:
        state.forget_expired(tables_[tables.SEEN_COMMANDS], now_ms, self.ttl_ms)

    def enqueue(self, job: Job, at_ms: int, delay_ms: int = 0) -> list[Output]:
        queued = outputs.event(self.jobs, emit.job_event(job, JobState.QUEUED, at_ms))
        if not delay_ms:
            return [*queued, *outputs.event(self.tiers[job.priority], emit.work(job, at_ms))]
        # The retry scheduler hands it back on `commands` when due (debounce).
        return [
            *queued,
            *outputs.scheduled(
                self.retry, emit.work(job, at_ms, due=True), at_ms + delay_ms, self.source
            ),
        ]

    def refuse(
        self, command: CloudEvent, job: Job | None, verdict: Verdict, at_ms: int
    ) -> list[Output]:
        reason = verdict.reason or "refused"
        out = outputs.event(
            self.rejected, emit.rejected(command, reason, at_ms, verdict.retry_after_ms)
        )
        if job is not None:
            out += outputs.event(
                self.jobs, emit.job_event(job, JobState.REJECTED, at_ms, reason=reason)
            )
        return out

    def decide(self, command: CloudEvent, state_: UserState, at_ms: int) -> list[Output]:
        user = command.subject
        if command.type == INFERENCE_REQUESTED:
            spec = InferenceIn.model_validate(command.data)
            job = Job(
                job_id=command.id,
                user_id=user,
                kind=JobKind.INFERENCE,
                priority=spec.priority,
                max_attempts=spec.max_attempts,
                timeout_s=spec.timeout_s,
                accepted_ms=at_ms,
                spec=InferenceSpec.model_validate(
                    spec.model_dump(include={"model", "inputs", "debounce_key"})
                ),
            )
            verdict = admission.admit_inference(state_, self.rules, job.job_id, at_ms)
            if not verdict.accepted:
                return self.refuse(command, job, verdict, at_ms)
            out: list[Output] = []
            replaced = admission.debounce(state_, spec.debounce_key, job.job_id)
            if replaced is not None:
                admission.finished(state_, replaced, None, "replaced")
                gone = job.model_copy(update={"job_id": replaced})
                out += outputs.event(
                    self.jobs, emit.job_event(gone, JobState.REJECTED, at_ms, reason="debounced")
                )
            return out + self.enqueue(job, at_ms, spec.debounce_ms if spec.debounce_key else 0)
        if command.type == CONTAINER_START:
            container = ContainerIn.model_validate(command.data)
            limits = {
                "max_lifetime_s": container.max_lifetime_s or self.lifetime_s,
                "idle_timeout_s": container.idle_timeout_s or self.idle_s,
            }
            job = Job(
                job_id=command.id,
                user_id=user,
                kind=JobKind.CONTAINER_START,
                priority=container.priority,
                accepted_ms=at_ms,
                timeout_s=60,
                spec=ContainerSpec(
                    **{**container.model_dump(), **limits, "image": container.image_to_run()},
                    container_id=command.id,
                ),
            )
            verdict = admission.admit_container(state_, self.rules, command.id, at_ms)
            if not verdict.accepted:
                return self.refuse(command, job, verdict, at_ms)
            return self.enqueue(job, at_ms)
        if command.type == CONTAINER_STOP:
            stop = ContainerStop.model_validate(command.data)
            job = stop_job(command.id, user, stop.container_id, stop.reason, at_ms)
            verdict = admission.stop_container(state_, stop.container_id)
            if not verdict.accepted:
                return self.refuse(command, job, verdict, at_ms)
            return self.enqueue(job, at_ms)
        if command.type == JOB_FINISHED:
            done = JobFinished.model_validate(command.data)
            became = admission.finished(state_, done.job_id, done.container_id, done.outcome, at_ms)
            if became is None or done.container_id is None:
                return []
            status = ContainerStatus(became)
            fields = done.model_dump(include={"image", "engine_id", "name", "reason"})
            event = emit.container_event(
                user, done.container_id, done.job_id, status, at_ms, **fields
            )
            out = outputs.event(self.containers, event)
            if became == "running" and done.address and done.display:
                ready = emit.display_ready(user, done.container_id, done.job_id, done, at_ms)
                out += outputs.event(self.containers, ready)
            return out
        if command.type == CONTAINER_GONE:
            report = ContainerGone.model_validate(command.data)
            if not container_rules.gone(state_, report.container_id):
                return []
            ended = Exited(report.container_id, report.reason, report.exit_code)
            return self.exited(user, ended, at_ms)
        if command.type == CONTAINERS_OBSERVED:
            return self.reconcile(
                user, ContainersObserved.model_validate(command.data), state_, at_ms
            )
        raise ValueError(f"unknown command type {command.type!r}")

    def reconcile(
        self, user: str, observed: ContainersObserved, state_: UserState, at_ms: int
    ) -> list[Output]:
        """A sweep of the user's containers on the engine: exits, and stops to make."""
        out: list[Output] = []
        for action in container_rules.reconcile(state_, observed, self.grace_ms):
            if isinstance(action, Exited):
                out += self.exited(user, action, at_ms)
            else:
                job_id = derived_id(action.container_id, f"stop:{action.reason}")
                job = stop_job(job_id, user, action.container_id, action.reason, at_ms)
                out += self.enqueue(job, at_ms)
        return out

    def exited(self, user: str, gone: Exited, at_ms: int) -> list[Output]:
        event = emit.container_event(
            user,
            gone.container_id,
            gone.container_id,
            ContainerStatus.EXITED,
            at_ms,
            reason=gone.reason,
            exit_code=gone.exit_code,
        )
        return outputs.event(self.containers, event)

    def due(self, record: Record, tables_: state.Tables) -> list[Output]:
        """A debounced job's delay is over: run it if no later request replaced it."""
        users = tables_[tables.USER_STATE]
        try:
            job = Job.model_validate_json(record.value or b"")
        except ValidationError as exc:  # only our scheduler writes these; never stop on one
            tables_.count("dead_lettered")
            return [outputs.dead_lettered(record, self.dlq, reason="invalid_job", error=str(exc))]
        user_state = UserState.from_json(users.get(job.user_id))
        if not admission.is_latest(user_state, _debounce_key(job), job.job_id):
            return []
        users[job.user_id] = user_state.to_json()
        return outputs.event(self.tiers[job.priority], emit.work(job, record.timestamp))


def stop_job(job_id: str, user: str, container_id: str, reason: StopReason, at_ms: int) -> Job:
    return Job(
        job_id=job_id,
        user_id=user,
        kind=JobKind.CONTAINER_STOP,
        priority="high",
        accepted_ms=at_ms,
        timeout_s=60,
        spec=StopSpec(container_id=container_id, reason=reason),
    )


def _debounce_key(job: Job) -> str | None:
    return job.spec.debounce_key if isinstance(job.spec, InferenceSpec) else None
