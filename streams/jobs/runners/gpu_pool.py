"""A global in-flight limit per GPU pool, shared by every worker: a leased semaphore in Redis.

The command agent's limits are per user (each user's commands are on one partition,
decided by one agent, in event time). A GPU pool is shared by all users and all
workers, so its limit cannot live in a per-partition table: every inference attempt
takes a slot here before it calls Triton and gives it back after.

One sorted set per pool: member = lease id, score = when the lease expires (ms, Redis
clock). Taking a slot first drops expired leases, so a worker SIGKILLed mid-job frees
its slot after the lease (the job's timeout plus a margin) without anyone's help.
While the pool is full the executor waits (that is backpressure: the work topic is
not read further by that actor); Redis down also means wait, never "no limit".
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from schemas import keys
from streams.metrics import POOL_IN_FLIGHT, POOL_WAIT_SECONDS
from tributary.pause import Pause

log = structlog.get_logger(__name__)

# KEYS[1] the pool's set; ARGV: lease id, cap, lease ms. Returns 1 if taken, else 0.
ACQUIRE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))  -- only ever extended: longer leases live
end
return 1
"""


class PoolFull(Exception):
    """No slot came free within the wait allowed."""


class GpuPool:
    """`slots` concurrent inference attempts on pool `name`, across every worker."""

    def __init__(
        self, client: aioredis.Redis, namespace: str, name: str, slots: int, poll_s: float = 0.05
    ) -> None:
        self.key = keys.gpu_pool(namespace, name)
        self.name = name
        self.slots = slots
        self._client = client
        self._acquire = client.register_script(ACQUIRE_LUA)
        self._poll_s = poll_s

    async def try_acquire(self, lease_id: str, lease_ms: int, limit: int | None = None) -> bool:
        """Take a slot if fewer than `limit` (default: all `slots`) are held."""
        cap = self.slots if limit is None else min(limit, self.slots)
        return bool(await self._acquire(keys=[self.key], args=[lease_id, cap, lease_ms]))

    async def release(self, lease_id: str) -> None:
        await self._client.zrem(self.key, lease_id)

    async def in_flight(self) -> int:
        """Leases held now (expired ones included until the next acquire drops them)."""
        return int(await self._client.zcard(self.key))

    @contextlib.asynccontextmanager
    async def slot(
        self, lease_ms: int, limit: int | None = None, wait_s: float | None = None
    ) -> AsyncIterator[str]:
        """Hold one slot for the block; wait for one (up to `wait_s`, else `PoolFull`).

        `limit` caps how many slots may be held when this one is taken: a lower tier
        passes fewer than `slots`, so the rest stay free for the higher tier."""
        lease_id = uuid.uuid4().hex
        loop = asyncio.get_running_loop()
        started = loop.time()
        pause = Pause(self._poll_s, cap_s=1.0)
        while True:
            try:
                if await self.try_acquire(lease_id, lease_ms, limit):
                    break
            except RedisError as exc:  # no Redis, no slot: wait for it like for a full pool
                log.warning("gpu pool unavailable; waiting", pool=self.name, error=str(exc))
            if wait_s is not None and loop.time() - started >= wait_s:
                raise PoolFull(f"gpu pool {self.name!r}: no free slot after {wait_s:g}s")
            await pause.wait()
        POOL_WAIT_SECONDS.labels(pool=self.name).observe(loop.time() - started)
        POOL_IN_FLIGHT.labels(pool=self.name).inc()
        try:
            yield lease_id
        finally:
            POOL_IN_FLIGHT.labels(pool=self.name).dec()
            with contextlib.suppress(RedisError):  # unreleased: the lease expires it
                await self.release(lease_id)
