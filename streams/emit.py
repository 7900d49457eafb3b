"""The result events agents write, built in one place (pure).

Ids are derived from (job, state, attempt[, step]), so an agent that reprocesses a
record after a crash writes records with the same ids, and every reader (ClickHouse
dedup, the status projection) sees the same event, not a second one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from schemas.envelope import CloudEvent
from schemas.jobs import JOB_FINISHED, Job, JobState
from streams.sequencing import derived_id

SOURCE = "tributary/streams"


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def job_event(job: Job, state: JobState, at_ms: int, step: str = "", **fields: Any) -> CloudEvent:
    """`job.<state>` on `jobs.events`."""
    data: dict[str, Any] = {
        "job_id": job.job_id,
        "kind": str(job.kind),
        "state": str(state),
        "attempt": job.attempt,
        "priority": job.priority,
        "accepted_ms": job.accepted_ms,
        "at_ms": at_ms,
        **{k: v for k, v in fields.items() if v is not None},
    }
    return CloudEvent(
        id=derived_id(job.job_id, f"{state}:{job.attempt}:{step}"),
        source=SOURCE,
        type=f"job.{state}",
        time=_at(at_ms),
        subject=job.user_id,
        data=data,
    )


def rejected(command: CloudEvent, reason: str, at_ms: int, retry_after_ms: int = 0) -> CloudEvent:
    """A refused command on `commands.rejected`: which command, and the rule that refused it."""
    return CloudEvent(
        id=derived_id(command.id, "rejected"),
        source=SOURCE,
        type="command.rejected",
        time=_at(at_ms),
        subject=command.subject,
        data={
            "command_id": command.id,
            "command_type": command.type,
            "reason": reason,
            "retry_after_ms": retry_after_ms,
        },
    )


def job_finished(job: Job, outcome: str, at_ms: int, container_id: str | None) -> CloudEvent:
    """The executor's report back onto `commands`, releasing the job's quota."""
    return CloudEvent(
        id=derived_id(job.job_id, f"finished:{job.attempt}"),
        source=SOURCE,
        type=JOB_FINISHED,
        time=_at(at_ms),
        subject=job.user_id,
        data={
            "job_id": job.job_id,
            "kind": str(job.kind),
            "outcome": outcome,
            "container_id": container_id,
        },
    )


def container_event(
    job: Job, container_id: str, state: str, at_ms: int, **fields: Any
) -> CloudEvent:
    """`container.<state>` on `containers.events`."""
    return CloudEvent(
        id=derived_id(job.job_id, f"container:{state}"),
        source=SOURCE,
        type=f"container.{state}",
        time=_at(at_ms),
        subject=job.user_id,
        data={
            "container_id": container_id,
            "job_id": job.job_id,
            "state": state,
            "at_ms": at_ms,
            **fields,
        },
    )
