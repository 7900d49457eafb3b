"""After a batch lands in the push streams: one Pub/Sub notice naming the streams written.

The notice is a hint, not the data: a gateway's reader (gateway/push_hub.py) reads the
named streams from where it last read, and sweeps every stream it follows now and then,
so a notice lost (Redis restarting, a reader reconnecting) delays delivery, never loses it.
One notice per batch, not per event: in a Redis Cluster a plain PUBLISH reaches every node.
"""

from __future__ import annotations

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from schemas import keys
from schemas.push import encode_notice
from tributary.pause import Pause

log = structlog.get_logger(__name__)
ATTEMPTS = 3


async def notify(client: aioredis.Redis, namespace: str, streams: set[str]) -> None:
    if not streams:
        return
    notice = encode_notice(streams)
    pause = Pause(first_s=0.1)
    for attempt in range(ATTEMPTS):
        try:
            await client.publish(keys.push_notices(namespace), notice)
            return
        except RedisError as exc:
            if attempt == ATTEMPTS - 1:
                log.warning("push notice not sent; readers' sweep will find it", error=str(exc))
                return
            await pause.wait()
