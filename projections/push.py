"""The push projector: sequenced events → one Redis Stream per user, for WebSocket delivery.

Each entry's id is `<seq>-0`, the user's sequence number from the owning agent, so
Redis itself refuses a replayed or duplicated seq (an id must grow): at-least-once
from Kafka, idempotent by seq into Redis. Every gateway node reads the same streams,
so a WebSocket on any node gets a user's events (no node-to-node broadcast needed).
Streams keep the last `push_history_size` entries and expire `push_history_ttl_s` after
the last event (older history is served from ClickHouse: docs/push.md). After each batch,
one Pub/Sub notice names the streams it appended to, so a gateway's single reader knows
which of its clients' streams to read (gateway/push_hub.py).
"""

from __future__ import annotations

import asyncio

import structlog
from pydantic import ValidationError
from redis.exceptions import RedisError, ResponseError

from projections.consumers import redis_projector_consumer
from projections.push_notices import notify
from schemas import contracts, keys
from schemas.envelope import EnvelopeError, from_kafka_lenient
from schemas.events import CountedData
from schemas.groups import PROJECTOR_PUSH
from schemas.push import STREAM_FIELD, TRACE_FIELD, push_payload
from tributary import heartbeats, redis_client, telemetry
from tributary.kafka_clients import commit_or_log
from tributary.pause import Pause
from tributary.settings import Settings

log = structlog.get_logger(__name__)


class PushProjector:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.redis = redis_client.connect(settings)
        self.consumer = redis_projector_consumer(settings, PROJECTOR_PUSH)

    async def run(self, stop: asyncio.Event) -> None:
        try:
            # Inside the try: a start that fails half-way is stopped, and Redis closed, too.
            await self.consumer.start()
            await redis_client.initialize(self.redis)
            while not stop.is_set():
                heartbeats.beat("push")
                batch = await self.consumer.getmany(timeout_ms=100, max_records=5000)
                if not batch:
                    continue
                messages = [m for msgs in batch.values() for m in msgs]
                await self._push(messages)
                await commit_or_log(self.consumer, group="projector-push")
        finally:
            heartbeats.forget("push")
            await self.consumer.stop()
            await self.redis.aclose()

    async def _push(self, messages: list) -> None:  # type: ignore[type-arg]
        entries: list[tuple[str, dict[str, bytes], str]] = []
        for msg in messages:
            try:
                event = from_kafka_lenient(msg.value, msg.headers)
                if not contracts.is_current(event.dataschema):
                    continue  # a copy in an older version of its type: the current one is pushed
                counted = CountedData.model_validate(event.data)
            except (EnvelopeError, ValidationError) as exc:
                log.warning("not pushable", offset=msg.offset, error=str(exc))
                continue
            payload = push_payload(counted, event.id, event.time.isoformat())
            key = keys.push_stream(self.settings.namespace, event.subject)
            fields = {STREAM_FIELD: payload}
            if telemetry.enabled:  # the trace goes on to the gateway's send (TRACE_FIELD)
                with telemetry.span("push to redis", msg.headers, seq=counted.seq) as on:
                    if on is not None:
                        fields[TRACE_FIELD] = telemetry.traceparent(on)
            entries.append((key, fields, f"{counted.seq}-0"))
        pause = Pause()
        while True:
            pipe = self.redis.pipeline(transaction=False)
            for key, fields, entry_id in entries:
                pipe.xadd(
                    key,
                    fields,  # type: ignore[arg-type]
                    id=entry_id,
                    maxlen=self.settings.push_history_size,
                    approximate=True,
                )
                pipe.expire(key, self.settings.push_history_ttl_s)
            try:
                results = await pipe.execute(raise_on_error=False)
                break
            except RedisError as exc:  # Redis down: keep the batch, retry, never skip it
                heartbeats.beat("push")
                log.warning("redis unavailable for push; retrying", error=str(exc))
                await pause.wait()
        await notify(self.redis, self.settings.namespace, {key for key, _, _ in entries})
        for result in results:
            # An id not above the stream's last is a seq pushed already: that is the dedup.
            if isinstance(result, ResponseError) and "equal or smaller" not in str(result):
                raise result
