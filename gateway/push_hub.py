"""One reader per gateway process for every WebSocket's stream, fanned out to the sockets.

A socket `subscribe`s to a stream key and gets a `Subscriber`: a bounded queue the hub
fills. The hub follows the projectors' Pub/Sub notices (`schemas.keys.push_notices`),
reads the named streams it has subscribers for from where it last read (one pipelined
`XRANGE` per round, whatever the number of keys) and hands each entry to every subscriber
of its key. Every `SWEEP_S` it reads all its streams anyway, so a notice lost costs
latency, never an event. Redis connections per gateway: one for Pub/Sub plus at most
`push_redis_concurrency` for reads, however many clients are connected.

A subscriber whose queue passes `push_send_buffer_bytes` is closed (`CLOSE_SLOW`) and
its queue dropped: a slow client costs at most that much memory.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
import structlog
from prometheus_client import Counter, Gauge
from redis.exceptions import ResponseError

from schemas import keys
from schemas.push import CLOSE_SLOW, STREAM_FIELD, TRACE_FIELD, decode_notice
from tributary import heartbeats
from tributary.pause import Pause

log = structlog.get_logger(__name__)

SWEEP_S = 5.0
PAGE = 500  # entries per XRANGE

EntryId = tuple[int, int]
# (parsed id, id as text, stored message, the trace it continues or None)
Entry = tuple[EntryId, str, bytes, bytes | None]

SOCKETS = Gauge("tributary_push_sockets", "WebSockets subscribed on this gateway process.")
STREAMS = Gauge("tributary_push_streams", "Streams the push reader follows for its sockets.")
SLOW_CLOSED = Counter("tributary_push_slow_closed", "Sockets closed for reading too slowly.")
ROUNDS = Counter("tributary_push_reads", "Pipelined read rounds of the push reader.")


def parse_id(entry_id: bytes | str) -> EntryId:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def entries_of(raw: Any) -> list[Entry]:
    """`XRANGE`'s reply as entries."""
    out: list[Entry] = []
    for entry_id, fields in raw or []:
        text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        stored = fields[STREAM_FIELD.encode()]
        out.append((parse_id(text), text, stored, fields.get(TRACE_FIELD.encode())))
    return out


@dataclass(frozen=True)
class StreamView:
    """What a stream holds now: its first and last entry ids, and the highest one trimmed."""

    exists: bool
    first: EntryId | None = None
    last: EntryId | None = None
    last_text: str | None = None
    first_text: str | None = None
    max_deleted: EntryId = (0, 0)


class Subscriber:
    """One socket's place in one stream: entries queued for it, and whether to close.

    Kept small (thousands per gateway): no task and no event of its own; whoever sends
    for the socket sets `listener`, called when entries or a close arrive."""

    __slots__ = ("_waiter", "closing", "key", "limit_bytes", "listener", "queue", "queued_bytes")

    def __init__(self, key: str, limit_bytes: int) -> None:
        self.key = key
        self.limit_bytes = limit_bytes
        self.queue: list[Entry] = []
        self.queued_bytes = 0
        self.closing: tuple[int, str] | None = None
        self.listener: Callable[[], None] | None = None
        self._waiter: asyncio.Future[None] | None = None

    def offer(self, entries: list[Entry]) -> None:
        if self.closing is not None:
            return
        self.queue.extend(entries)
        self.queued_bytes += sum(len(entry[2]) for entry in entries)
        if self.queued_bytes > self.limit_bytes:
            SLOW_CLOSED.inc()
            self.close(CLOSE_SLOW, "slow_client: resume from the last seq seen")
            return
        self._notify()

    def close(self, code: int, reason: str) -> None:
        self.closing = (code, reason)
        self.drain()
        self._notify()

    def drain(self) -> list[Entry]:
        """The entries queued, taken off the queue."""
        taken, self.queue, self.queued_bytes = self.queue, [], 0
        return taken

    async def take(self) -> list[Entry]:
        """The entries queued (waits for some, or for a close: then [] and `closing`)."""
        while not self.queue and self.closing is None:
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return self.drain()

    def _notify(self) -> None:
        if self.listener is not None:
            self.listener()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class PushHub:
    def __init__(self, client: aioredis.Redis, namespace: str, concurrency: int, buffer: int):
        self.client = client
        self.namespace = namespace
        self.buffer = buffer
        self.reads = asyncio.Semaphore(concurrency)
        self.subscribers: dict[str, set[Subscriber]] = {}
        self.positions: dict[str, EntryId] = {}  # the last entry handed out, per stream
        self.pending: set[str] = set()
        self.kick = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self.tasks = [
            asyncio.create_task(self._notices(), name="push-notices"),
            asyncio.create_task(self._reader(), name="push-reader"),
            asyncio.create_task(self._sweeper(), name="push-sweeper"),
        ]

    async def stop(self) -> None:
        heartbeats.forget("push-reader")
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def close_all(self, code: int, reason: str) -> None:
        for subscribers in self.subscribers.values():
            for subscriber in subscribers:
                subscriber.close(code, reason)

    # ---------------------------------------------------------------- sockets' side

    async def subscribe(self, key: str) -> Subscriber:
        """A subscriber of `key`, handed every entry after the stream's end as of now (the
        caller reads what came before with `read`). Raises RedisError."""
        if key not in self.positions:
            view = await self.view(key)
            self.positions.setdefault(key, view.last or (0, 0))
        subscriber = Subscriber(key, self.buffer)
        self.subscribers.setdefault(key, set()).add(subscriber)
        SOCKETS.inc()
        STREAMS.set(len(self.subscribers))
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        subscribers = self.subscribers.get(subscriber.key)
        if subscribers is None or subscriber not in subscribers:
            return
        subscribers.discard(subscriber)
        SOCKETS.dec()
        if not subscribers:
            del self.subscribers[subscriber.key]
            self.positions.pop(subscriber.key, None)
        STREAMS.set(len(self.subscribers))

    async def read(self, key: str, after: str, count: int = PAGE) -> list[Entry]:
        """Up to `count` entries of `key` after id `after` (exclusive)."""
        async with self.reads:
            raw = await self.client.xrange(key, min=f"({after}", max="+", count=count)
        return entries_of(raw)

    async def view(self, key: str) -> StreamView:
        async with self.reads:
            try:
                info = await self.client.xinfo_stream(key)
            except ResponseError as exc:
                if "no such key" in str(exc).lower():
                    return StreamView(exists=False)
                raise
        first = info.get("first-entry")
        last = info.get("last-entry")
        deleted = info.get("max-deleted-entry-id") or b"0-0"
        return StreamView(
            exists=True,
            first=parse_id(first[0]) if first else None,
            first_text=_text(first[0]) if first else None,
            last=parse_id(last[0]) if last else None,
            last_text=_text(last[0]) if last else None,
            max_deleted=parse_id(deleted),
        )

    def _seq_ids(self, stream: str) -> bool:
        """A user's events stream: entry ids are `<seq>-0`, so a gap shows."""
        return keys.is_push_stream(self.namespace, stream)

    # ---------------------------------------------------------------- the one reader

    async def _notices(self) -> None:
        """Follow the notices; after each (re)subscription, read every stream once."""
        pause = Pause()
        while True:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(keys.push_notices(self.namespace))
                self._want(set(self.positions))  # whatever a gap in the notices hid
                pause.reset()
                async for message in pubsub.listen():
                    if message and message.get("type") == "message":
                        self._want(set(decode_notice(message["data"])))
            except Exception as exc:  # whatever it was, the notices must go on
                log.warning("push notices unavailable; retrying", error=repr(exc))
                await pause.wait()
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def _sweeper(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_S)
            self._want(set(self.positions))

    def _want(self, streams: set[str]) -> None:
        followed = streams & self.positions.keys()
        if followed:
            self.pending |= followed
            self.kick.set()

    async def _reader(self) -> None:
        try:
            await self._read_forever()
        finally:
            heartbeats.forget("push-reader")

    async def _read_forever(self) -> None:
        pause = Pause()
        while True:
            heartbeats.beat("push-reader")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.kick.wait(), SWEEP_S)
            self.kick.clear()
            wanted, self.pending = self.pending, set()
            try:
                await self._read_round(sorted(wanted))
                pause.reset()
            except Exception as exc:  # Redis, the cluster client, a malformed entry: go on
                log.warning("push streams unreadable; retrying", error=repr(exc))
                self._want(wanted)
                await pause.wait()

    async def _read_round(self, streams: list[str]) -> None:
        for start in range(0, len(streams), PAGE):
            chunk = [s for s in streams[start : start + PAGE] if s in self.positions]
            asked = {s: self.positions[s] for s in chunk}
            async with self.reads:
                pipe = self.client.pipeline(transaction=False)
                for stream, (ms, seq) in asked.items():
                    pipe.xrange(stream, min=f"({ms}-{seq}", max="+", count=PAGE)
                replies = await pipe.execute()
            ROUNDS.inc()
            for stream, raw in zip(asked, replies, strict=True):
                position = self.positions.get(stream)
                if position is None or not raw:
                    continue  # nobody follows it any more, or nothing new
                fresh = [e for e in entries_of(raw) if e[0] > position]
                if not fresh:
                    continue
                if (
                    self._seq_ids(stream)
                    and position != (0, 0)
                    and fresh[0][0][0] > position[0] + 1
                ):
                    # Trimmed past where this reader was: its sockets would skip seqs.
                    for subscriber in self.subscribers.get(stream, ()):
                        subscriber.close(CLOSE_SLOW, "fell behind the stream: resume")
                self.positions[stream] = fresh[-1][0]
                for subscriber in self.subscribers.get(stream, ()):
                    subscriber.offer(fresh)
                if len(raw) == PAGE:
                    self._want({stream})  # more to read


def _text(entry_id: bytes | str) -> str:
    return entry_id.decode() if isinstance(entry_id, bytes) else entry_id
