"""The topic registry: the only place a topic name, its keying and its retention live.

Names here are logical; on the broker a topic is `<namespace>.<name>` so that a
demo stack and a test session can share one broker.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

DAY_MS = 24 * 60 * 60 * 1000
# The largest record batch every topic takes (`max.message.bytes`) and every producer may
# send (`max_request_size`); both default to 1 MiB, less than a 1 MiB body plus its headers.
# The gateway's body limit is held to half of it, which leaves the agents room for the
# headers they add on the way (sequence, reasons).
MAX_RECORD_BYTES = 4 * 1024 * 1024


class KeyedBy(StrEnum):
    USER = "user"


@dataclass(frozen=True)
class TopicSpec:
    """What a topic holds, how it is keyed and how long it is kept."""

    name: str
    description: str
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
)
COUNTED = TopicSpec(
    name="events.counted",
    description="Ingested events stamped by the owning agent with the user's sequence number.",
)

DLQ = TopicSpec(
    name="dlq",
    description="Records no agent could process: the original record plus x-tributary-* reason.",
    retention_ms=30 * DAY_MS,
)

COMMANDS = TopicSpec(
    name="commands",
    description=(
        "Container and inference commands from the gateway, and the executors' job.finished"
        " reports: the one ordered log per user that the command agent decides from."
    ),
)
WORK_HIGH = TopicSpec(
    name="work.high",
    description="Accepted jobs of the high priority tier, for the executors.",
)
WORK_NORMAL = TopicSpec(
    name="work.normal",
    description="Accepted jobs of the normal priority tier, for the executors.",
)
RETRY = TopicSpec(
    name="work.retry",
    description="Jobs waiting for their next attempt; header x-tributary-due-ms says when.",
)
JOBS = TopicSpec(
    name="jobs.events",
    description=(
        "Job lifecycle: queued, active, progress, completed, failed, retrying, dead_lettered,"
        " rejected, with attempts, reasons and results."
    ),
)
CONTAINERS = TopicSpec(
    name="containers.events",
    description="Container state changes (running, stopped) as the executor saw them.",
)
REJECTED = TopicSpec(
    name="commands.rejected",
    description="Commands the command agent refused, with the limit or rule that refused them.",
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
)


def by_name(name: str) -> TopicSpec:
    """The spec of logical topic `name`; raises KeyError naming the known topics."""
    for spec in REGISTRY:
        if spec.name == name:
            return spec
    raise KeyError(f"unknown topic {name!r}; known: {[s.name for s in REGISTRY]}")
