"""Operating on the DLQ topic: list, show, retry (re-produce to the origin topic), purge.

A dead letter keeps the original key, value and headers plus the reason, error and origin
(`schemas.dead_letters`). A retry sends the original record back to its origin topic,
marked `retried from` (`schemas.headers.RETRIED_FROM`); the
agents' dedup by event id still applies, so retrying a record that did get through
has no second effect. A letter without a value (`record_too_large`: the value is what did
not fit) is not retried; the record itself is at its origin.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka import TopicPartition
from aiokafka.admin import RecordsToDelete

from schemas import headers as h
from schemas.dead_letters import Letter, origin_topic
from schemas.topics import DLQ
from tributary import kafka_clients
from tributary.kafka_clients import admin_client, partitions, read_to_end, started
from tributary.settings import Settings


async def read(settings: Settings) -> list[Letter]:
    """Every dead letter still on the DLQ topic, oldest first per partition."""
    records = await read_to_end(settings.kafka_bootstrap, DLQ.physical(settings.namespace))
    letters = [
        Letter(m.partition, m.offset, m.timestamp, m.key, m.value, list(m.headers)) for m in records
    ]
    return sorted(letters, key=lambda d: (d.timestamp_ms, d.partition, d.offset))


@dataclass(frozen=True)
class Placed:
    """What a retry did with one letter: `at` is where its record went, None if skipped."""

    letter: Letter
    at: str | None
    why_skipped: str = ""

    @property
    def sent(self) -> bool:
        return self.at is not None

    def __str__(self) -> str:
        if self.at is None:
            return f"{self.letter.position} skipped: {self.why_skipped}"
        return f"{self.letter.position} -> {self.at}"


async def retry(settings: Settings, letters: list[Letter]) -> list[Placed]:
    """Send each letter's original record back to its origin topic; say where each went."""
    producer = kafka_clients.producer(settings.kafka_bootstrap)
    async with started(producer):
        placed = []
        for letter in letters:
            topic = origin_topic(letter.headers)
            if letter.value is None:  # not copied (record_too_large): nothing to send
                why = f"no value kept; the record is at {letter.origin}"
                placed.append(Placed(letter, None, why))
                continue
            if topic is None:
                placed.append(Placed(letter, None, "no origin to send it back to"))
                continue
            headers = [
                *letter.original_headers(),
                (h.RETRIED_FROM, f"dlq:{letter.position}".encode()),
            ]
            meta = await producer.send_and_wait(
                topic, letter.value, key=letter.key, headers=headers
            )
            placed.append(Placed(letter, f"{meta.topic}:{meta.partition}:{meta.offset}"))
        return placed


async def purge(settings: Settings) -> int:
    """Delete every dead letter now on the topic (Kafka DeleteRecords); return how many.

    Counted as letters, not offsets: letters written in transactions are followed by
    commit markers, which take offsets too."""
    topic = DLQ.physical(settings.namespace)
    consumer = kafka_clients.committed_reader(settings.kafka_bootstrap)
    async with started(consumer):
        tps = [TopicPartition(topic, p) for p in await partitions(settings.kafka_bootstrap, topic)]
        ends = await consumer.end_offsets(tps)
    end_of = {tp.partition: end for tp, end in ends.items()}
    count = sum(1 for letter in await read(settings) if letter.offset < end_of[letter.partition])
    async with admin_client(settings.kafka_bootstrap) as admin:
        await admin.delete_records({tp: RecordsToDelete(ends[tp]) for tp in tps if ends[tp]})
    return count
