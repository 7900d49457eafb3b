"""Every Kafka consumer group Tributary runs: the topics it reads and the process it runs in.

The code takes its group ids from here, and so do the deploy files' autoscalers (KEDA
scales a process on the lag of its groups); `tests/unit/test_k8s.py` fails when the two
drift. Physical names are `<namespace>-<suffix>`.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.topics import (
    COMMANDS,
    CONTAINERS,
    COUNTED,
    DESKTOP_SESSIONS,
    DLQ,
    INGEST,
    JOBS,
    REJECTED,
    RETRY,
    WORK_HIGH,
    WORK_NORMAL,
    TopicSpec,
)


@dataclass(frozen=True)
class ConsumerGroup:
    suffix: str
    topics: tuple[TopicSpec, ...]
    process: str  # "worker" or "projector": what scales with this group's lag

    def physical(self, namespace: str) -> str:
        return f"{namespace}-{self.suffix}"


# The deciding agents, one group each (streams/runtime/transactional.py: `streams-<agent name>`).
COUNTER = ConsumerGroup("streams-counter", (INGEST,), "worker")
COMMAND_AGENT = ConsumerGroup("streams-commands", (COMMANDS,), "worker")
# The executors' decisions, one transactional loop per priority tier.
EXECUTOR_HIGH = ConsumerGroup("streams-executor-high", (WORK_HIGH,), "worker")
EXECUTOR_NORMAL = ConsumerGroup("streams-executor-normal", (WORK_NORMAL,), "worker")
RETRY_SCHEDULER = ConsumerGroup("retry-scheduler", (RETRY,), "worker")
PROJECTOR_CLICKHOUSE = ConsumerGroup(
    "projector-clickhouse",
    (INGEST, COUNTED, COMMANDS, JOBS, CONTAINERS, REJECTED, DLQ, DESKTOP_SESSIONS),
    "projector",
)
PROJECTOR_PUSH = ConsumerGroup("projector-push", (COUNTED,), "projector")
PROJECTOR_STATUS = ConsumerGroup("projector-status", (COMMANDS, JOBS, CONTAINERS), "projector")

GROUPS: tuple[ConsumerGroup, ...] = (
    COUNTER,
    COMMAND_AGENT,
    EXECUTOR_HIGH,
    EXECUTOR_NORMAL,
    RETRY_SCHEDULER,
    PROJECTOR_CLICKHOUSE,
    PROJECTOR_PUSH,
    PROJECTOR_STATUS,
)


def of_agent(name: str) -> ConsumerGroup:
    """The group of the transactional agent `name` (`counter`, `commands`, `executor-high`,
    `executor-normal`)."""
    return next(g for g in GROUPS if g.suffix == f"streams-{name}")
