"""Kafka clients with our options, made in one place, and the helpers every stage shares.

`producer`, `group_consumer` and `committed_reader` hold the options Tributary relies on
(idempotent acks=all producers sized for our records; consumers that read committed
records only and commit themselves); a caller adds or overrides what is its own (a
transactional id, a session timeout, the gateway's linger).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata
from prometheus_client import Counter

from schemas.topics import MAX_RECORD_BYTES

log = structlog.get_logger(__name__)

COMMITS_REFUSED = Counter(
    "tributary_offset_commits_refused_total",
    "Offset commits the consumer group refused (rebalancing, member expired)",
    ["group"],
)

Client = TypeVar("Client", AIOKafkaConsumer, AIOKafkaProducer)


def producer(bootstrap: str, **options: Any) -> AIOKafkaProducer:
    """Idempotent, acks=all (with min.insync.replicas, no acknowledged record is lost to
    one broker), records up to the topics' `MAX_RECORD_BYTES`."""
    defaults: dict[str, Any] = {
        "enable_idempotence": True,
        "acks": "all",
        "max_request_size": MAX_RECORD_BYTES,
    }
    return AIOKafkaProducer(bootstrap_servers=bootstrap, **{**defaults, **options})


def group_consumer(bootstrap: str, group_id: str, *topics: str, **options: Any) -> AIOKafkaConsumer:
    """A member of `group_id` that commits its offsets itself (after its writes), reads
    committed records only (the deciding agents write in transactions), and starts a
    partition with no committed offset at its beginning."""
    defaults: dict[str, Any] = {
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed",
    }
    return AIOKafkaConsumer(
        *topics, bootstrap_servers=bootstrap, group_id=group_id, **{**defaults, **options}
    )


@asynccontextmanager
async def started(client: Client) -> AsyncIterator[Client]:
    """`client` started, and stopped on the way out, also when its start failed or was
    cancelled half-way: a start that got past the bootstrap leaves connections and a
    metadata task behind otherwise (and a loop that retries the start leaks one per try)."""
    try:
        await client.start()
        yield client
    finally:
        await client.stop()


@asynccontextmanager
async def admin_client(
    bootstrap: str, start_timeout_s: float | None = None, **options: Any
) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started admin client, closed on the way out, also when its start failed or timed
    out (a start abandoned half-way leaves a connection open otherwise)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **options)
    try:
        await asyncio.wait_for(admin.start(), start_timeout_s)
        yield admin
    finally:
        await admin.close()


async def partitions(bootstrap: str, topic: str) -> list[int]:
    """The partition ids of `topic`; raises RuntimeError if the topic does not exist."""
    async with admin_client(bootstrap) as admin:
        described = await admin.describe_topics([topic])
    if not described or described[0].get("error_code"):
        raise RuntimeError(f"topic {topic} does not exist")
    return [p["partition"] for p in described[0]["partitions"]]


async def read_to_end(bootstrap: str, topic: str) -> list[ConsumerRecord]:  # type: ignore[type-arg]
    """Every committed record on `topic` up to its end offsets now, partition by partition."""
    tps = [TopicPartition(topic, p) for p in sorted(await partitions(bootstrap, topic))]
    records: list[ConsumerRecord] = []  # type: ignore[type-arg]
    async for _, batch in read_partitions(bootstrap, tps):
        records += batch
    return records


def committed_reader(bootstrap: str) -> AIOKafkaConsumer:
    """A consumer for reading topics as they are: no group (it commits nothing and takes no
    partitions from anyone), committed records only; assign and seek it yourself."""
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        # Not the default "latest": assign() starts that reset in the background, and if it
        # finishes after our seek, the reader sits at the end and reads nothing.
        auto_offset_reset="earliest",
    )


async def read_partitions(
    bootstrap: str, tps: list[TopicPartition]
) -> AsyncIterator[tuple[TopicPartition, list[ConsumerRecord]]]:  # type: ignore[type-arg]
    """Batches of every committed record of `tps`, from their beginning to their end now."""
    consumer = committed_reader(bootstrap)
    # started(): a reader cancelled while it connects (a sibling restore failed) still
    # closes its consumer.
    async with started(consumer):
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)  # read_committed: the last stable offsets
        begins = await consumer.beginning_offsets(tps)
        for tp in tps:
            consumer.seek(tp, begins[tp])
        pending = {tp for tp in tps if ends[tp] > begins[tp]}
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=500, max_records=10_000)
            for tp, messages in batch.items():
                yield tp, [m for m in messages if m.offset < ends[tp]]
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)


async def commit_or_log(
    consumer: AIOKafkaConsumer,
    offsets: dict[TopicPartition, int] | dict[TopicPartition, OffsetAndMetadata] | None = None,
    *,
    group: str,
) -> bool:
    """Commit; a commit the group refuses is logged and counted, not raised.

    A commit fails when the group is rebalancing or this member was dropped (a
    SIGKILLed peer's session expiring, a stalled heartbeat on a busy machine). The
    records are then read again after the rejoin, and every caller writes
    idempotently (the projector even resumes from what ClickHouse holds), so the
    only cost is re-reading. Letting it raise killed the whole process instead.
    """
    try:
        await consumer.commit(offsets)
        return True
    except KafkaError as exc:  # CommitFailedError, IllegalStateError (not assigned), ...
        COMMITS_REFUSED.labels(group=group).inc()
        log.warning("offset commit refused; records will be re-read", group=group, error=str(exc))
        return False
