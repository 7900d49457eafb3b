"""Where the projector goes on after an assignment: from what ClickHouse holds.

On (re)assignment the consumer resumes from `max(_offset) + 1` per partition that ClickHouse
itself holds, so a crash between an insert and the offset commit re-reads nothing already in
the table (the inserts' dedup tokens cover a retried insert). Kafka's committed offsets are
only for lag monitoring. On revocation the projector writes what it has first.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import structlog
from aiokafka import ConsumerRebalanceListener, TopicPartition

from projections.clickhouse import ClickHouse
from projections.tables import Projection

if TYPE_CHECKING:
    from projections.projector import Projector

log = structlog.get_logger(__name__)


def resume_offsets(
    ch: ClickHouse, by_topic: dict[str, Projection], tps: list[TopicPartition]
) -> dict[TopicPartition, int]:
    """Per partition, the offset after the last row ClickHouse holds (absent: none)."""
    found: dict[TopicPartition, int] = {}
    by_table: dict[str, list[str]] = {}
    for tp in tps:
        by_table.setdefault(by_topic[tp.topic].table, []).append(tp.topic)
    for table, topics in by_table.items():
        names = ", ".join(f"'{t}'" for t in sorted(set(topics)))
        _, rows = ch.query(
            f"SELECT _topic, _partition, max(_offset) FROM {ch.database}.{table} "
            f"WHERE _topic IN ({names}) GROUP BY _topic, _partition"
        )
        for topic, partition, last in rows:
            found[TopicPartition(topic, int(partition))] = int(last) + 1
    return {tp: offset for tp, offset in found.items() if tp in set(tps)}


class ResumeFromClickHouse(ConsumerRebalanceListener):  # type: ignore[misc]
    """The projector's rebalance listener: flush and let go; resume from ClickHouse."""

    def __init__(self, projector: Projector) -> None:
        self.projector = projector

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        # Still the owner during this callback: write what we have, then let go. With
        # ClickHouse's circuit open the write would hold the rebalance: give it up.
        if self.projector.parked:
            log.warning("rebalance while the insert is parked: giving it up")
            await self.projector.give_up_parked()
        else:  # a flush that parks meanwhile gives up too (`revoking`)
            self.projector.revoking = True
            try:
                await self.projector.flush()
            finally:
                self.projector.revoking = False
        for tp in revoked:
            self.projector.next_offset.pop(tp, None)
            self.projector.watch.forget(tp)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        projector = self.projector
        consumer = projector.consumer
        # Every await comes first. The fetcher runs while this callback awaits, and a
        # record that arrives for a partition with no `next_offset` yet is dropped while
        # its position moves on: awaiting between a seek and setting `next_offset` lost
        # the rest of a partition (the SIGKILL test stalled at 86,000 of 100,000 rows).
        try:
            resume = await asyncio.to_thread(
                resume_offsets, projector.ch, projector.by_topic, list(assigned)
            )
        except Exception as exc:  # ClickHouse down: no position is safe, so none is taken
            log.error("cannot position the assignment", error=str(exc))
            projector.cannot_position(exc)
            return
        fresh = [tp for tp in assigned if tp not in resume]
        starts = await consumer.beginning_offsets(fresh) if fresh else {}
        # Always seek: ClickHouse, not Kafka's committed offset, says where to go on.
        # (Seeking only where the two differed, and asking the coordinator for the
        # committed offset here, left partitions idle for a whole generation.)
        for tp in assigned:
            offset = resume[tp] if tp in resume else starts[tp]
            projector.next_offset[tp] = offset
            consumer.seek(tp, offset)
        log.info(
            "partitions assigned",
            resumed={f"{tp.topic}:{tp.partition}": o for tp, o in sorted(resume.items())},
            from_beginning=len(fresh),
        )
