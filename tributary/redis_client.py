"""The one way Tributary processes connect to Redis: with socket timeouts.

Without them, a Redis that stops answering (paused, partitioned) hangs the caller for as
long as the kernel keeps the connection: a gateway request, a projector flush or an
executor waiting for a GPU slot would hang instead of failing over to 503 or a retry.
"""

from __future__ import annotations

from typing import cast

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

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
