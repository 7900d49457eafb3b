"""The topic registry: the only place a topic name, its keying and its retention live.

Names here are logical; on the broker a topic is `<namespace>.<name>` so that a
demo stack and a test session can share one broker.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

DAY_MS = 24 * 60 * 60 * 1000


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

REGISTRY: tuple[TopicSpec, ...] = (INGEST, COUNTED, DLQ)


def by_name(name: str) -> TopicSpec:
    """The spec of logical topic `name`; raises KeyError naming the known topics."""
    for spec in REGISTRY:
        if spec.name == name:
            return spec
    raise KeyError(f"unknown topic {name!r}; known: {[s.name for s in REGISTRY]}")
