"""Jobs: what clients ask for (containers, inference), and the states a job goes through.

A job is a command the command agent accepted. Its id is the command's event id, so
a client's retry with the same Idempotency-Key names the same job. Event types on
the topics are the constants below; the `data` of each is one of these models.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Priority = Literal["high", "normal"]
IMAGE_PATTERN = r"^[a-z0-9][a-z0-9._/-]{0,127}(:[A-Za-z0-9._-]{1,64})?$"
# One argument of a container's command, one text to embed (MiniLM reads the first 256
# word pieces of a text; far longer ones are client bugs, refused with 422 by name).
Argument = Annotated[str, Field(max_length=1024)]
Text = Annotated[str, Field(max_length=8192)]

# Event types on `commands`.
CONTAINER_START = "container.start"
CONTAINER_STOP = "container.stop"
INFERENCE_REQUESTED = "inference.requested"
JOB_FINISHED = "job.finished"


class JobKind(StrEnum):
    INFERENCE = "inference"
    CONTAINER_START = "container.start"
    CONTAINER_STOP = "container.stop"


class JobState(StrEnum):
    SUBMITTED = "submitted"  # on `commands`, not yet decided
    QUEUED = "queued"
    ACTIVE = "active"
    PROGRESS = "progress"
    COMPLETED = "completed"
    FAILED = "failed"  # one attempt failed; `retrying` or `dead_lettered` follows
    RETRYING = "retrying"
    DEAD_LETTERED = "dead_lettered"
    REJECTED = "rejected"


FINAL_STATES = frozenset({JobState.COMPLETED, JobState.DEAD_LETTERED, JobState.REJECTED})


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


class InferenceIn(BaseModel):
    """`POST /v1/inference`: embed texts with a model served by Triton."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(default="minilm", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    inputs: list[Text] = Field(min_length=1, max_length=64)
    priority: Priority = "normal"
    timeout_s: float = Field(default=30.0, gt=0, le=300)
    max_attempts: int = Field(default=3, ge=1, le=10)
    debounce_key: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.:-]{1,128}$",
        description="A later request with the same key inside `debounce_ms` replaces this one.",
    )
    debounce_ms: int = Field(default=0, ge=0, le=60_000)


class Job(BaseModel):
    """An accepted job as it travels on the work and retry topics."""

    job_id: str
    user_id: str
    kind: JobKind
    priority: Priority = "normal"
    attempt: int = 1
    max_attempts: int = 3
    timeout_s: float = 30.0
    accepted_ms: int
    spec: dict[str, Any] = Field(default_factory=dict)
    history: list[dict[str, Any]] = Field(default_factory=list)


class JobAccepted(BaseModel):
    """202: the command is on the broker; follow it at `status_url`."""

    job_id: str
    status_url: str
    container_id: str | None = None


class JobView(BaseModel):
    """`GET /v1/jobs/{job_id}`: the job as the stream side last reported it."""

    job_id: str
    kind: str
    state: JobState
    attempts: int = 0
    progress: float = 0.0
    failure_reason: str | None = None
    result: Any = None
    updated_ms: int | None = None


class ContainerView(BaseModel):
    """`GET /v1/containers/{container_id}`."""

    container_id: str
    state: str
    image: str | None = None
    job_id: str | None = None
    updated_ms: int | None = None
    reason: str | None = None


def container_name(namespace: str, container_id: str) -> str:
    """The engine-side name: derived from the command, so a retried create finds it."""
    return f"trib-{namespace}-{container_id}"


def job_key(namespace: str, job_id: str) -> str:
    """The Redis hash with a job's status (written by the status projector)."""
    return f"{namespace}:job:{job_id}"


def container_key(namespace: str, container_id: str) -> str:
    """The Redis hash with a container's status (written by the status projector)."""
    return f"{namespace}:container:{container_id}"
