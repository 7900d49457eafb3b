"""Version 1 of the job types whose version was bumped: still written side by side
(`schemas.editions`) until their `until` date, for subscribers that read version 1.

Version 2 (2026-12-03) added the container limits (`max_lifetime_s`, `idle_timeout_s`) to
`container.start` and to container jobs, and a stop's `reason`; version 1's objects
allow no other fields, so a version 1 reader would refuse them.
"""

from __future__ import annotations

from typing import Any

# Same class names as version 1 had: the published schema names its parts by them.
from pydantic import BaseModel, ConfigDict, Field

from schemas.jobs import (
    IMAGE_PATTERN,
    Argument,
    FailedAttempt,
    InferenceSpec,
    JobKind,
    Priority,
)

CONTAINER_LIMITS = ("max_lifetime_s", "idle_timeout_s", "display")


class ContainerIn(BaseModel):
    """`POST /v1/containers`: a container for the caller, from an image on the engine."""

    model_config = ConfigDict(extra="forbid")

    image: str = Field(pattern=IMAGE_PATTERN, examples=["tributary/busybox:local"])
    command: list[Argument] = Field(
        default_factory=list, max_length=32, examples=[["sleep", "3600"]]
    )
    cpus: float = Field(default=0.5, gt=0, le=4)
    memory_mb: int = Field(default=128, ge=16, le=4096)
    priority: Priority = "normal"


class ContainerSpec(BaseModel):
    """What a container start runs; `container_id` is the command's id."""

    model_config = ConfigDict(extra="forbid")

    container_id: str
    image: str
    command: list[Argument] = Field(default_factory=list)
    cpus: float = 0.5
    memory_mb: int = 128
    priority: Priority = "normal"


class StopSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    container_id: str


class Job(BaseModel):
    """`data` of `job.work` and `job.due`: an accepted job on the work and retry topics."""

    job_id: str
    user_id: str
    kind: JobKind
    priority: Priority = "normal"
    attempt: int = 1
    max_attempts: int = 3
    timeout_s: float = 30.0
    accepted_ms: int
    spec: InferenceSpec | ContainerSpec | StopSpec
    history: list[FailedAttempt] = Field(default_factory=list)


def container_start_v1(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in CONTAINER_LIMITS}


def job_v1(data: dict[str, Any]) -> dict[str, Any]:
    spec = {k: v for k, v in data["spec"].items() if k not in (*CONTAINER_LIMITS, "reason")}
    return {**data, "spec": spec}
