"""The counter agent: ingest → dedup by event id → per-user sequence → `events.counted`.

Pure per record (`process`); the transactional loop (`streams.runtime.transactional`) makes
the table changes, the output and the input offset one Kafka transaction.
"""

from __future__ import annotations

from schemas import tables
from schemas.envelope import EnvelopeError, from_kafka
from schemas.topics import COUNTED, DLQ, INGEST
from streams.events.sequencing import stamp
from streams.runtime import outputs, state
from streams.runtime.outputs import Output, Record
from tributary.settings import Settings


class EventCounter:
    """Stamps each user's events 1, 2, 3… once per event id (within the dedup TTL)."""

    name = "counter"
    tables: tuple[str, ...] = (tables.USER_SEQ, tables.SEEN_EVENTS)

    def __init__(self, settings: Settings) -> None:
        ns = settings.namespace
        self.source = INGEST.physical(ns)
        self.counted = COUNTED.physical(ns)
        self.dlq = DLQ.physical(ns)
        self.ttl_ms = settings.dedup_ttl_s * 1000

    def process(self, record: Record, tables_: state.Tables) -> list[Output]:
        try:
            incoming = from_kafka(record.value, record.headers)
        except EnvelopeError as exc:
            tables_.count("dead_lettered")
            return [
                outputs.dead_lettered(record, self.dlq, reason="invalid_envelope", error=str(exc))
            ]
        seqs, seen = tables_[tables.USER_SEQ], tables_[tables.SEEN_EVENTS]
        seen_key = f"{incoming.user_id}/{incoming.id}"
        if state.seen_before(seen, seen_key, record.timestamp, self.ttl_ms):
            tables_.count("duplicate")
            return []
        seq, out = stamp(incoming, seqs.get(incoming.user_id, 0))
        seqs[incoming.user_id] = seq
        seen[seen_key] = record.timestamp
        tables_.count("counted")
        return outputs.event(self.counted, out)

    def tidy(self, tables_: state.Tables, now_ms: int) -> None:
        state.forget_expired(tables_[tables.SEEN_EVENTS], now_ms, self.ttl_ms)
