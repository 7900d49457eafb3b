"""The result events agents write, built from the contract's models in one place (pure).

Ids are derived from (job, state, attempt[, step]), so an agent that reprocesses a
record after a crash writes records with the same ids, and every reader (ClickHouse
dedup, the status projection) sees the same event, not a second one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from schemas.envelope import CloudEvent
from schemas.jobs import (
    COMMAND_REJECTED,
    CONTAINER_DISPLAY_READY,
    JOB_DUE,
    JOB_FINISHED,
    JOB_RESULT,
    JOB_WORK,
    AttemptResult,
    CommandRejected,
    ContainerEvent,
    ContainerStatus,
    DisplayReady,
    Job,
    JobFinished,
    JobState,
    JobStep,
    Outcome,
    container_event_type,
    job_step_type,
)
from streams.events.sequencing import derived_id

SOURCE = "tributary/streams"


def _event(
    cause: str, step: str, event_type: str, at_ms: int, subject: str, data: BaseModel
) -> CloudEvent:
    """The event for `step` of `cause` (a job or command id), its id derived from both."""
    return CloudEvent(
        id=derived_id(cause, step),
        source=SOURCE,
        type=event_type,
        time=datetime.fromtimestamp(at_ms / 1000, UTC),
        subject=subject,
        data=data.model_dump(mode="json", exclude_none=True),
    )


def job_event(job: Job, state: JobState, at_ms: int, step: str = "", **fields: Any) -> CloudEvent:
    """`job.<state>` on `jobs.events`; `fields`: the step's optional `JobStep` fields."""
    data = JobStep(
        job_id=job.job_id,
        kind=job.kind,
        state=state,
        attempt=job.attempt,
        priority=job.priority,
        accepted_ms=job.accepted_ms,
        at_ms=at_ms,
        **fields,
    )
    step_id = f"{state}:{job.attempt}:{step}"
    return _event(job.job_id, step_id, job_step_type(state), at_ms, job.user_id, data)


def rejected(command: CloudEvent, reason: str, at_ms: int, retry_after_ms: int = 0) -> CloudEvent:
    """A refused command on `commands.rejected`: which command, and the rule that refused it."""
    data = CommandRejected(
        command_id=command.id,
        command_type=command.type,
        reason=reason,
        retry_after_ms=retry_after_ms,
    )
    return _event(command.id, "rejected", COMMAND_REJECTED, at_ms, command.subject, data)


def job_finished(job: Job, outcome: Outcome, at_ms: int, **fields: Any) -> CloudEvent:
    """The executor's report back onto `commands`, releasing the job's quota; `fields`:
    what the command agent tells of the container (`JobFinished`'s optional fields)."""
    data = JobFinished(
        job_id=job.job_id,
        kind=job.kind,
        outcome=outcome,
        container_id=job.container_id(),
        **fields,
    )
    step = f"finished:{job.attempt}"
    return _event(job.job_id, step, JOB_FINISHED, at_ms, job.user_id, data)


def container_event(
    user: str, container_id: str, job_id: str, status: ContainerStatus, at_ms: int, **fields: Any
) -> CloudEvent:
    """`container.<status>` on `containers.events`, caused by job `job_id` (the container's
    start or stop; its own id when the engine reported it gone)."""
    data = ContainerEvent(
        container_id=container_id, job_id=job_id, state=status, at_ms=at_ms, **fields
    )
    event_type = container_event_type(status)
    return _event(job_id, f"container:{status}", event_type, at_ms, user, data)


def display_ready(
    user: str, container_id: str, job_id: str, done: JobFinished, at_ms: int
) -> CloudEvent:
    """`container.display.ready` on `containers.events`: a desktop can be viewed."""
    assert done.display is not None and done.address is not None
    data = DisplayReady(
        container_id=container_id,
        job_id=job_id,
        at_ms=at_ms,
        width=done.display.width,
        height=done.display.height,
        address=done.address,
    )
    return _event(job_id, "display.ready", CONTAINER_DISPLAY_READY, at_ms, user, data)


def attempt_result(job: Job, at_ms: int, **fields: Any) -> CloudEvent:
    """`job.result`: how attempt `job.attempt` ended (`AttemptResult`'s fields), for the
    executor's decision on the job's work topic partition."""
    data = AttemptResult(job=job, at_ms=at_ms, **fields)
    return _event(job.job_id, f"result:{job.attempt}", JOB_RESULT, at_ms, job.user_id, data)


def work(job: Job, at_ms: int, due: bool = False) -> CloudEvent:
    """`job.work`: an attempt of `job` for an executor (on a work or the retry topic), or
    `job.due`: a debounced job to hand back to the command agent when its delay is over."""
    kind = JOB_DUE if due else JOB_WORK
    return _event(job.job_id, f"{kind}:{job.attempt}", kind, at_ms, job.user_id, job)
