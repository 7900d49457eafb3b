"""Jobs: what clients ask for (containers, inference), and the states a job goes through.

A job is a command the command agent accepted. Its id is the command's event id, so
a client's retry with the same Idempotency-Key names the same job. Event types on
the topics are the constants below; the `data` of each is one of these models.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Priority = Literal["high", "normal"]
# How a job ended, as the executor reports it (a container start ends `running`).
Outcome = Literal["completed", "running", "stopped", "dead_lettered"]
IMAGE_PATTERN = r"^[a-z0-9][a-z0-9._/-]{0,127}(:[A-Za-z0-9._-]{1,64})?$"
# One argument of a container's command, one text to embed (MiniLM reads the first 256
# word pieces of a text; far longer ones are client bugs, refused with 422 by name).
Argument = Annotated[str, Field(max_length=1024)]
Text = Annotated[str, Field(max_length=8192)]

# Event types on `commands` (the gateway's commands, the executors' reports).
CONTAINER_START = "container.start"
CONTAINER_STOP = "container.stop"
INFERENCE_REQUESTED = "inference.requested"
JOB_FINISHED = "job.finished"
# The engine's reports on `commands`: a container died or was removed outside a stop
# (the engine watcher), and what one sweep found of a user's containers (the reconciler).
CONTAINER_GONE = "container.gone"
CONTAINERS_OBSERVED = "containers.observed"
# Accepted jobs on the work topics and the retry topic, and a debounced job coming due.
JOB_WORK = "job.work"
JOB_DUE = "job.due"
# How one attempt's side effect ended, back on its work topic for the executor to decide.
JOB_RESULT = "job.result"
# A command the command agent refused, on `commands.rejected`.
COMMAND_REJECTED = "command.rejected"


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


def job_step_type(state: JobState) -> str:
    """The CloudEvents type of a job step on `jobs.events`: `job.<state>`."""
    return f"job.{state}"


JOB_STEP_TYPES = tuple(job_step_type(s) for s in JobState if s is not JobState.SUBMITTED)


class ContainerStatus(StrEnum):
    """What the executor saw a container become (`container.<status>`)."""

    RUNNING = "running"
    STOPPED = "stopped"
    EXITED = "exited"  # ended outside a stop: see `ExitReason`


# Why a container ended without being asked to: its process exited on its own, the kernel
# killed it for memory, it was killed (a signal from outside), it was removed from the
# engine by hand, or it was no longer on the engine at a reconcile.
ExitReason = Literal["exited", "oom", "killed", "removed", "vanished"]
# Why Tributary stopped a container that no one asked to stop.
StopReason = Literal["requested", "lifetime", "idle", "orphan"]


def container_event_type(status: ContainerStatus) -> str:
    return f"container.{status}"


CONTAINER_EVENT_TYPES = tuple(container_event_type(s) for s in ContainerStatus)
CONTAINER_ID_PATTERN = r"^[A-Za-z0-9-]{1,64}$"
# On `containers.events`: a desktop container's screen can be viewed (after `running`).
CONTAINER_DISPLAY_READY = "container.display.ready"
# On `desktop.sessions`: one viewer's session on a desktop's relay, when it ended.
DESKTOP_SESSION = "desktop.session"
# The image a desktop runs unless the request names one (Xvfb, x11vnc, xterm).
DESKTOP_IMAGE = "tributary/desktop:local"
VNC_PORT = 5900  # takes input: the owner's
VNC_VIEW_PORT = 5901  # view-only: share links


class Display(BaseModel):
    """A desktop's screen: the container runs a display of this size, viewed through the
    gateway's relay (`WS /v1/containers/{id}/display`)."""

    model_config = ConfigDict(extra="forbid")

    width: int = Field(default=1280, ge=320, le=3840)
    height: int = Field(default=800, ge=240, le=2160)


class ContainerIn(BaseModel):
    """`POST /v1/containers`: a container for the caller, from an image on the engine."""

    model_config = ConfigDict(extra="forbid")

    image: str | None = Field(
        default=None,
        pattern=IMAGE_PATTERN,
        examples=["tributary/busybox:local"],
        description=f"Required, except for a desktop (`display`): {DESKTOP_IMAGE} by default.",
    )
    command: list[Argument] = Field(
        default_factory=list, max_length=32, examples=[["sleep", "3600"]]
    )
    cpus: float = Field(default=0.5, gt=0, le=4)
    memory_mb: int = Field(default=128, ge=16, le=4096)
    priority: Priority = "normal"
    max_lifetime_s: int | None = Field(
        default=None,
        ge=1,
        le=30 * 86_400,
        description=(
            "Stopped this long after it started (default: TRIBUTARY_CONTAINER_MAX_LIFETIME_S)."
        ),
    )
    idle_timeout_s: int | None = Field(
        default=None,
        ge=1,
        le=30 * 86_400,
        description=(
            "Stopped after this long without using CPU (default: TRIBUTARY_CONTAINER_IDLE_S)."
        ),
    )
    display: Display | None = Field(
        default=None,
        description="A desktop: runs a screen of this size (image: tributary/desktop).",
    )

    @model_validator(mode="after")
    def _an_image(self) -> ContainerIn:
        if self.image is None and self.display is None:
            raise ValueError("image: required (only a desktop, with `display`, has a default)")
        return self

    def image_to_run(self) -> str:
        return self.image or DESKTOP_IMAGE


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


class ContainerStop(BaseModel):
    """`data` of `container.stop`: which of the caller's containers to stop."""

    container_id: str = Field(pattern=CONTAINER_ID_PATTERN)
    reason: StopReason = "requested"


class ContainerGone(BaseModel):
    """`data` of `container.gone`: the engine says a container ended without a stop."""

    container_id: str = Field(pattern=CONTAINER_ID_PATTERN)
    reason: ExitReason
    exit_code: int | None = None
    at_ms: int


class ObservedContainer(BaseModel):
    """One container as a reconcile found it on the engine."""

    container_id: str = Field(pattern=CONTAINER_ID_PATTERN)
    running: bool
    exit_code: int | None = None
    oom_killed: bool = False
    created_ms: int
    idle_ms: int = Field(default=0, description="How long it has used no CPU (0: busy).")
    max_lifetime_s: int | None = None
    idle_timeout_s: int | None = None


class ContainersObserved(BaseModel):
    """`data` of `containers.observed`: every container of one user found on the engine."""

    containers: list[ObservedContainer]
    at_ms: int


class InferenceSpec(BaseModel):
    """What an inference job runs."""

    model_config = ConfigDict(extra="forbid")

    model: str
    inputs: list[Text]
    debounce_key: str | None = None


class ContainerSpec(BaseModel):
    """What a container start runs; `container_id` is the command's id."""

    model_config = ConfigDict(extra="forbid")

    container_id: str
    image: str
    command: list[Argument] = Field(default_factory=list)
    cpus: float = 0.5
    memory_mb: int = 128
    priority: Priority = "normal"
    max_lifetime_s: int | None = None
    idle_timeout_s: int | None = None
    display: Display | None = None


class StopSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    container_id: str
    reason: StopReason = "requested"


class FailedAttempt(BaseModel):
    """One failed attempt of a job, kept in its history."""

    attempt: int
    error: str
    at_ms: int


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

    def container_id(self) -> str | None:
        """The container a start or stop is about; None for inference."""
        return None if isinstance(self.spec, InferenceSpec) else self.spec.container_id


class JobFinished(BaseModel):
    """`data` of `job.finished`: an executor's report that releases the job's quota."""

    job_id: str
    kind: JobKind
    outcome: Outcome
    container_id: str | None = None
    image: str | None = None
    engine_id: str | None = None
    name: str | None = None
    reason: StopReason | None = Field(default=None, description="Why a container was stopped.")
    address: str | None = Field(default=None, description="A desktop's host on its network.")
    display: Display | None = None


class JobStep(BaseModel):
    """`data` of `job.<state>` on `jobs.events`: one step of a job's life."""

    job_id: str
    kind: JobKind
    state: JobState
    attempt: int
    priority: Priority
    accepted_ms: int
    at_ms: int
    reason: str | None = Field(default=None, description="Why it failed or was refused.")
    permanent: bool | None = Field(default=None, description="A failure no retry can fix.")
    due_ms: int | None = Field(default=None, description="When a retrying job runs again.")
    progress: float | None = Field(default=None, ge=0, le=1)
    result: list[list[float]] | dict[str, Any] | None = Field(
        default=None, description="Embeddings (inference) or the engine's answer (containers)."
    )


class ContainerEvent(BaseModel):
    """`data` of `container.<status>` on `containers.events`."""

    container_id: str
    job_id: str
    state: ContainerStatus
    at_ms: int
    image: str | None = None
    engine_id: str | None = None
    name: str | None = None
    reason: ExitReason | StopReason | None = Field(
        default=None, description="Why it exited or was stopped."
    )
    exit_code: int | None = None


class DisplayReady(BaseModel):
    """`data` of `container.display.ready`: the desktop's screen can be viewed."""

    container_id: str
    job_id: str
    at_ms: int
    width: int
    height: int
    address: str = Field(description="Where the gateways' relay reaches its VNC servers.")


class DesktopSession(BaseModel):
    """`data` of `desktop.session`: one viewer's session on a desktop, when it ended."""

    container_id: str
    session_id: str
    role: Literal["owner", "viewer"]
    joined_ms: int
    left_ms: int
    bytes_to_viewer: int
    bytes_from_viewer: int
    close_reason: str


class AttemptResult(BaseModel):
    """`data` of `job.result`: how one attempt's side effect ended (the effect step's report
    to the executor's decision, on the job's own work topic partition)."""

    job: Job
    at_ms: int
    outcome: Outcome | None = Field(default=None, description="Set when it succeeded.")
    result: dict[str, Any] | None = None
    error: str | None = None
    permanent: bool = False


class CommandRejected(BaseModel):
    """`data` of `command.rejected`: which command was refused, and the rule that refused it."""

    command_id: str
    command_type: str
    reason: str
    retry_after_ms: int = 0


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
    exit_code: int | None = None
    display: str | None = Field(
        default=None,
        description="A desktop's screen (`1280x800`) once it can be viewed: "
        "`/v1/containers/{id}/view`.",
    )


# Labels of our containers on the engine: whose it is and its limits (read back by the
# engine watch, and by the gateway to check a container's owner at the engine).
LABEL_NAMESPACE = "tributary.namespace"
LABEL_USER = "tributary.user"
LABEL_CONTAINER = "tributary.container"
LABEL_LIFETIME = "tributary.max_lifetime_s"
LABEL_IDLE = "tributary.idle_timeout_s"


def container_name(namespace: str, container_id: str) -> str:
    """The engine-side name: derived from the command, so a retried create finds it."""
    return f"trib-{namespace}-{container_id}"
