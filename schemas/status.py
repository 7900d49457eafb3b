"""The status hashes in Redis: written by the status projector, read by the gateway.

`GET /v1/jobs/{id}` and `GET /v1/containers/{id}` answer from these (`schemas.keys.job`,
`schemas.keys.container`). A hash is written in parts (a command sets what is not known yet,
each event overwrites what it says), so every field is optional; values are text in Redis.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Self, TypeVar

import orjson
from pydantic import BaseModel

from schemas.jobs import ContainerView, JobState, JobView


class _Hash(BaseModel):
    user: str | None = None
    updated_ms: int | None = None

    def fields(self) -> dict[str, str]:
        """The set fields, as Redis hash fields."""
        return {k: str(v) for k, v in self.model_dump(exclude_none=True).items()}

    @classmethod
    def from_fields(cls, raw: dict[bytes, bytes] | dict[str, str]) -> Self:
        return cls.model_validate(
            {(k.decode() if isinstance(k, bytes) else k): _text(v) for k, v in raw.items()}
        )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class JobStatus(_Hash):
    """A job's status: `GET /v1/jobs/{id}`."""

    kind: str | None = None
    state: JobState | None = None
    attempts: int | None = None
    progress: float | None = None
    result: str | None = None  # the result's JSON text
    failure_reason: str | None = None

    @staticmethod
    def result_text(result: Any) -> str:
        return orjson.dumps(result).decode()

    def view(self, job_id: str) -> JobView:
        return JobView(
            job_id=job_id,
            kind=self.kind or "",
            state=self.state or JobState.SUBMITTED,
            attempts=self.attempts or 0,
            progress=self.progress or 0.0,
            failure_reason=self.failure_reason,
            result=orjson.loads(self.result) if self.result is not None else None,
            updated_ms=self.updated_ms,
        )


class ContainerState(StrEnum):
    """A container as `GET /v1/containers/{id}` shows it."""

    REQUESTED = "requested"  # the command is on `commands`
    RUNNING = "running"
    STOPPED = "stopped"
    EXITED = "exited"  # ended without a stop: `reason` says how (oom, killed, exited, ...)
    FAILED = "failed"  # refused or dead-lettered before it ran


# A container in one of these states is over: its status hash may expire. The others
# never do, so a running container can always be found (and stopped).
ENDED = (ContainerState.STOPPED, ContainerState.EXITED, ContainerState.FAILED)


class ContainerStatusHash(_Hash):
    """A container's status: `GET /v1/containers/{id}`."""

    state: ContainerState | None = None
    image: str | None = None
    job_id: str | None = None
    reason: str | None = None
    exit_code: int | None = None
    address: str | None = None  # a desktop's, for the gateways' relay (not shown)
    display: str | None = None  # a desktop's screen, `<width>x<height>`, once ready

    def view(self, container_id: str) -> ContainerView:
        return ContainerView(
            container_id=container_id,
            state=self.state or ContainerState.REQUESTED,
            image=self.image,
            job_id=self.job_id,
            updated_ms=self.updated_ms,
            reason=self.reason,
            exit_code=self.exit_code,
            display=self.display,
        )


Status = TypeVar("Status", JobStatus, ContainerStatusHash)
