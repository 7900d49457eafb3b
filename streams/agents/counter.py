"""The counter agent: ingest → dedup by event id → per-user sequence → `events.counted`.

Read, decide (pure `stamp`), write. Under `exactly_once` the table's changelog
write, the output record and the input offset commit are one Kafka transaction.
"""

from __future__ import annotations

import faust
import structlog

from schemas.envelope import EnvelopeError, from_kafka
from schemas.topics import COUNTED, DLQ, INGEST
from streams import tables
from streams.dedup import already_seen, seen_table
from streams.dlq import dead_letter
from streams.metrics import EVENTS_PROCESSED
from streams.sequencing import stamp
from streams.topics import raw_topic, send_event
from tributary.settings import Settings

log = structlog.get_logger(__name__)


def install(app: faust.App, settings: Settings) -> None:
    ns = settings.namespace
    ingest = raw_topic(app, INGEST, ns)
    counted = raw_topic(app, COUNTED, ns)
    dlq = raw_topic(app, DLQ, ns)
    seqs = app.Table(tables.USER_SEQ, default=int, partitions=settings.partitions, key_type=str)
    ttl = settings.dedup_ttl_s
    seen = seen_table(app, tables.SEEN_EVENTS, settings.partitions, ttl)  # user/id -> seq

    async def count(stream: faust.StreamT) -> None:
        async for event in stream.events():
            try:
                incoming = from_kafka(event.value, event.headers)
            except EnvelopeError as exc:
                await dead_letter(dlq, event, reason="invalid_envelope", error=str(exc))
                EVENTS_PROCESSED.labels(agent="counter", outcome="dead_lettered").inc()
                continue
            seen_key = f"{incoming.user_id}/{incoming.id}"
            if already_seen(seen, seen_key, ttl):
                EVENTS_PROCESSED.labels(agent="counter", outcome="duplicate").inc()
                continue
            seq, out = stamp(incoming, seqs[incoming.user_id])
            seqs[incoming.user_id] = seq
            seen[seen_key] = seq
            await send_event(counted, out)
            EVENTS_PROCESSED.labels(agent="counter", outcome="counted").inc()

    app.agent(ingest, name="counter")(count)
