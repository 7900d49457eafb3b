"""The one way Tributary processes connect to Redis: with socket timeouts.

Without them, a Redis that stops answering (paused, partitioned) hangs the caller for as
long as the kernel keeps the connection: a gateway request, a projector flush or an
executor waiting for a GPU slot would hang instead of failing over to 503 or a retry.
"""

from __future__ import annotations

import contextlib
from typing import cast

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from tributary.settings import Settings


def connect(settings: Settings, name: str | None = None) -> aioredis.Redis:
    """A client of the Redis `settings` name; of the whole cluster with `redis_cluster`
    (redis-py's cluster client: the same commands, each sent to its key's node). `name`:
    what its connections are called in `CLIENT LIST`."""
    timeout = settings.redis_timeout_s
    most = settings.redis_max_connections
    if settings.redis_cluster:
        cluster = RedisCluster.from_url(
            settings.redis_dsn,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            client_name=name,
            # Not `max_connections`: redis-py's cluster client raises past it instead of
            # waiting. The push reader bounds its own reads (`push_redis_concurrency`).
        )
        return cast(aioredis.Redis, cluster)
    # A burst of callers waits for a connection (up to the timeout) rather than opening
    # one each: a gateway's connections stay bounded however many clients it serves.
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis_dsn,
        max_connections=most,
        timeout=timeout,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        client_name=name,
    )
    return aioredis.Redis.from_pool(pool)


async def initialize(client: aioredis.Redis) -> None:
    """Load a cluster client's slot map now, before concurrent callers share it.

    redis-py 8.1's cluster client loads it on first use; several first commands at once
    can then have one's connection reset while it is still connecting, which raises
    `AttributeError: 'NoneType' object has no attribute 'writelines'` (about 1 fresh client
    in 25 under 12 concurrent scripts here, none once initialized). A Redis that cannot be
    reached now is left to the lazy load of the first command, which retries."""
    if isinstance(client, RedisCluster):
        with contextlib.suppress(RedisError, OSError):
            await client.initialize()
