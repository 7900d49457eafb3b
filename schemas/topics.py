"""The topic registry: the only place a topic name, its keying and its retention live.

Names here are logical; on the broker a topic is `<namespace>.<name>` so that a
demo stack and a test session can share one broker.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from schemas.events import CLIENT_EVENT, COUNTED_TYPE
from schemas.jobs import (
    COMMAND_REJECTED,
    CONTAINER_DISPLAY_READY,
    CONTAINER_EVENT_TYPES,
    CONTAINER_GONE,
    CONTAINER_START,
    CONTAINER_STOP,
    CONTAINERS_OBSERVED,
    DESKTOP_SESSION,
    INFERENCE_REQUESTED,
    JOB_DUE,
    JOB_FINISHED,
    JOB_RESULT,
    JOB_STEP_TYPES,
    JOB_WORK,
)

DAY_MS = 24 * 60 * 60 * 1000
# The largest record batch every topic takes (`max.message.bytes`) and every producer may
# send (`max_request_size`); both default to 1 MiB, less than a 1 MiB body plus its headers.
# The gateway's body limit is held to half of it, which leaves the agents room for the
# headers they add on the way (sequence, reasons).
MAX_RECORD_BYTES = 4 * 1024 * 1024


class KeyedBy(StrEnum):
    USER = "user"


class Audience(StrEnum):
    SUBSCRIBERS = "subscribers"  # a contract: other services may read it
    INTERNAL = "internal"  # between Tributary's own processes; readable, not promised


@dataclass(frozen=True)
class TopicSpec:
    """What a topic holds, how it is keyed and how long it is kept."""

    name: str
    description: str
    carries: tuple[str, ...]  # the CloudEvents types on it (`schemas.contracts`)
    guarantee: str  # how records get there: exactly once, or at-least-once and how to dedup
    audience: Audience = Audience.INTERNAL
    keyed_by: KeyedBy = KeyedBy.USER
    retention_ms: int = 7 * DAY_MS
    compacted: bool = False

    def physical(self, namespace: str) -> str:
        """The topic's name on the broker for stack `namespace`."""
        return f"{namespace}.{self.name}"

    def config(self) -> dict[str, str]:
        """Broker-side topic config."""
        return {
            "retention.ms": str(self.retention_ms),
            "cleanup.policy": "compact" if self.compacted else "delete",
            "max.message.bytes": str(MAX_RECORD_BYTES),
        }


INGEST = TopicSpec(
    name="events.ingest",
    description="Every client event accepted by the gateway (CloudEvents, binary mode).",
    carries=(CLIENT_EVENT,),
    guarantee=(
        "at-least-once from the gateway (idempotent producer, 202 after acks=all); a client's"
        " retry with the same event id or Idempotency-Key is dropped by the counter."
    ),
    audience=Audience.SUBSCRIBERS,
)
COUNTED = TopicSpec(
    name="events.counted",
    description="Ingested events stamped by the owning agent with the user's sequence number.",
    carries=(COUNTED_TYPE,),
    guarantee=(
        "exactly once (the counter's Kafka transactions; read with read_committed): each"
        " client event once, `seq` 1, 2, 3… per user without gaps."
    ),
    audience=Audience.SUBSCRIBERS,
)

DLQ = TopicSpec(
    name="dlq",
    description=(
        "Records no agent could process, unchanged (not always CloudEvents: that can be why"
        " they failed), with `x-tributary-reason`, `-error` and `-origin` headers."
    ),
    carries=(),
    guarantee="at-least-once; `tributary dlq` lists, shows and retries them.",
    retention_ms=30 * DAY_MS,
)

COMMANDS = TopicSpec(
    name="commands",
    description=(
        "Container and inference commands from the gateway, the executors' job.finished"
        " reports and the engine's (container.gone, containers.observed): the one ordered log"
        " per user that the command agent decides from."
    ),
    carries=(
        CONTAINER_START,
        CONTAINER_STOP,
        INFERENCE_REQUESTED,
        JOB_FINISHED,
        JOB_DUE,
        CONTAINER_GONE,
        CONTAINERS_OBSERVED,
    ),
    guarantee=(
        "at-least-once (gateway, executors, the engine watcher, the retry scheduler's"
        " job.due); the command agent drops a command id it has seen."
    ),
)
WORK_HIGH = TopicSpec(
    name="work.high",
    description=(
        "Accepted jobs of the high priority tier, for the executors, and how each attempt's"
        " side effect ended (job.result), for the executor's decision."
    ),
    carries=(JOB_WORK, JOB_RESULT),
    guarantee=(
        "job.work exactly once from the command agent (transactions), once more after a DLQ"
        " retry; job.result at-least-once (the executor decides an attempt's result once)."
    ),
)
WORK_NORMAL = TopicSpec(
    name="work.normal",
    description=(
        "Accepted jobs of the normal priority tier, for the executors, and how each attempt's"
        " side effect ended (job.result), for the executor's decision."
    ),
    carries=(JOB_WORK, JOB_RESULT),
    guarantee=(
        "job.work exactly once from the command agent (transactions), once more after a DLQ"
        " retry; job.result at-least-once (the executor decides an attempt's result once)."
    ),
)
RETRY = TopicSpec(
    name="work.retry",
    description="Jobs waiting for their next attempt or a debounce delay; headers say when.",
    carries=(JOB_WORK, JOB_DUE),
    guarantee="at-least-once (executors) or exactly once (command agent); ids are stable.",
)
JOBS = TopicSpec(
    name="jobs.events",
    description=(
        "Job lifecycle: queued, active, progress, completed, failed, retrying, dead_lettered,"
        " rejected, with attempts, reasons and results."
    ),
    carries=JOB_STEP_TYPES,
    guarantee=(
        "queued and rejected exactly once (command agent); the executors' steps at-least-once"
        " with ids derived from (job, state, attempt): deduplicate by id."
    ),
    audience=Audience.SUBSCRIBERS,
)
CONTAINERS = TopicSpec(
    name="containers.events",
    description=(
        "Container state changes (running, stopped, exited with its reason and exit code),"
        " decided by the command agent from the executors' and the engine's reports."
    ),
    carries=(*CONTAINER_EVENT_TYPES, CONTAINER_DISPLAY_READY),
    guarantee=(
        "exactly once (the command agent's Kafka transactions); ids derived from"
        " (container, state)."
    ),
    audience=Audience.SUBSCRIBERS,
)
REJECTED = TopicSpec(
    name="commands.rejected",
    description="Commands the command agent refused, with the limit or rule that refused them.",
    carries=(COMMAND_REJECTED,),
    guarantee="exactly once (the command agent's Kafka transactions).",
    audience=Audience.SUBSCRIBERS,
)

DESKTOP_SESSIONS = TopicSpec(
    name="desktop.sessions",
    description=(
        "Viewers' sessions on desktops' relays: who watched or drove which desktop, for how"
        " long, and the bytes relayed each way."
    ),
    carries=(DESKTOP_SESSION,),
    guarantee="at-least-once (the gateway's relay), one id per session: deduplicate by id.",
    audience=Audience.SUBSCRIBERS,
    retention_ms=30 * DAY_MS,
)

WORK_TIERS = {"high": WORK_HIGH, "normal": WORK_NORMAL}

REGISTRY: tuple[TopicSpec, ...] = (
    INGEST,
    COUNTED,
    DLQ,
    COMMANDS,
    WORK_HIGH,
    WORK_NORMAL,
    RETRY,
    JOBS,
    CONTAINERS,
    REJECTED,
    DESKTOP_SESSIONS,
)


def by_name(name: str) -> TopicSpec:
    """The spec of logical topic `name`; raises KeyError naming the known topics."""
    for spec in REGISTRY:
        if spec.name == name:
            return spec
    raise KeyError(f"unknown topic {name!r}; known: {[s.name for s in REGISTRY]}")
