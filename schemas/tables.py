"""Every table the stream workers keep, and the Kafka topics behind them, named in one place.

Faust would create a table's changelog topic itself when a worker starts, but a
worker that writes to a table right after that can still see the new topic with no
partitions in its metadata and crash the agent (`PartitionsMismatch`; the agent is
then wedged and processes nothing). So `tributary topics` / `up` and the test fixtures
create the changelogs beforehand, from this list.
"""

from __future__ import annotations

from schemas.topics import WORK_TIERS

USER_SEQ = "user-seq"  # counter: user -> last sequence number
SEEN_EVENTS = "seen-events"  # counter: user/event id -> seq (windowed, dedup)
USER_STATE = "user-state"  # command agent: user -> limits, quotas, debounce
SEEN_COMMANDS = "seen-commands"  # command agent: user/command id (windowed, dedup)
JOB_ATTEMPTS = "job-attempts"  # executors: job id -> last attempt started (and if running)
APP_ID = "streams"  # the worker's id: `<namespace>-streams`, the prefix of every changelog


def job_attempts(tier: str) -> str:
    """The executor of priority tier `tier`'s attempts table."""
    return f"{JOB_ATTEMPTS}-{tier}"


def position_table(loop: str) -> str:
    """A transactional loop's input position per partition, committed with its state."""
    return f"{loop}-position"


WINDOWED = (SEEN_EVENTS, SEEN_COMMANDS)
TABLES = (
    USER_SEQ,
    SEEN_EVENTS,
    USER_STATE,
    SEEN_COMMANDS,
    *(job_attempts(tier) for tier in WORK_TIERS),
    position_table("counter"),
    position_table("commands"),
    *(position_table(f"executor-{tier}") for tier in WORK_TIERS),
)


def app_id(namespace: str) -> str:
    return f"{namespace}-{APP_ID}"


def changelog_topic(namespace: str, table: str) -> str:
    """The compacted topic a table's changes are written to (Faust's naming)."""
    return f"{app_id(namespace)}-{table}-changelog"


def transactional_id(group: str, partition: int) -> str:
    """The producer id of a transactional loop's input partition (fences a zombie owner)."""
    return f"{group}-{partition}"


def changelog_topics(namespace: str, dedup_ttl_s: int) -> dict[str, dict[str, str]]:
    """Changelog topic name -> its config, as Faust names and configures them."""
    topics = {}
    for table in TABLES:
        if table in WINDOWED:
            # Faust keeps a windowed table's changes for its expiry (2 TTLs) plus a day.
            retention_ms = (2 * dedup_ttl_s + 86_400) * 1000
            config = {"cleanup.policy": "compact,delete", "retention.ms": str(retention_ms)}
        else:
            config = {"cleanup.policy": "compact"}
        topics[changelog_topic(namespace, table)] = config
    return topics
