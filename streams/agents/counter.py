"""The counter agent: ingest → dedup by event id → per-user sequence → `events.counted`.

Read, decide (pure `stamp`), write. Under `exactly_once` the table's changelog
write, the output record and the input offset commit are one Kafka transaction.
"""

from __future__ import annotations

from typing import Any

import faust
import structlog

from schemas.envelope import EnvelopeError, from_kafka, to_kafka
from schemas.topics import COUNTED, DLQ, INGEST
from streams.dlq import dead_letter
from streams.metrics import EVENTS_PROCESSED
from streams.sequencing import stamp
from tributary.settings import Settings

log = structlog.get_logger(__name__)


def install(app: faust.App, settings: Settings) -> None:
    ns = settings.namespace
    raw: dict[str, Any] = {
        "key_type": bytes,
        "value_type": bytes,
        "key_serializer": "raw",
        "value_serializer": "raw",
    }
    ingest = app.topic(INGEST.physical(ns), **raw)
    counted = app.topic(COUNTED.physical(ns), **raw)
    dlq = app.topic(DLQ.physical(ns), **raw)
    seqs = app.Table("user-seq", default=int, partitions=settings.partitions, key_type=str)
    # event id -> the seq it got. Tumbling windows of the TTL, checked current and
    # previous, so an id is remembered for between one and two TTLs of event time
    # (the record timestamp: a replay decides the same) and then expires.
    ttl = settings.dedup_ttl_s
    seen = (
        app.Table("seen-events", default=int, partitions=settings.partitions, key_type=str)
        .tumbling(ttl, expires=2 * ttl)
        .relative_to_stream()
    )

    async def count(stream: faust.StreamT) -> None:
        async for event in stream.events():
            try:
                incoming = from_kafka(event.value, event.headers)
            except EnvelopeError as exc:
                await dead_letter(dlq, event, reason="invalid_envelope", error=str(exc))
                EVENTS_PROCESSED.labels(agent="counter", outcome="dead_lettered").inc()
                continue
            # Ids are client-chosen: one user's id must not shadow another's.
            seen_key = f"{incoming.user_id}/{incoming.id}"
            if seen[seen_key].current() or seen[seen_key].delta(ttl):
                EVENTS_PROCESSED.labels(agent="counter", outcome="duplicate").inc()
                continue
            seq, out = stamp(incoming, seqs[incoming.user_id])
            seqs[incoming.user_id] = seq
            seen[seen_key] = seq
            key, value, headers = to_kafka(out)
            await counted.send(key=key, value=value, headers=headers)
            EVENTS_PROCESSED.labels(agent="counter", outcome="counted").inc()

    app.agent(ingest, name="counter")(count)
