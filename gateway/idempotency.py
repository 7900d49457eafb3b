"""`Idempotency-Key`: a retried POST gets the first answer back instead of a second event.

State per (user, route, key) in Redis: `pending` while the first request runs (a
concurrent duplicate gets 409), then the stored answer for `idempotency_ttl_s`. The
key is bound to the body's hash: the same key with another body is a client bug (422).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from gateway.errors import ApiError, DependencyUnavailable
from schemas import keys

log = structlog.get_logger(__name__)

PENDING_TTL_S = 60
MAX_KEY_LENGTH = 200


@dataclass(frozen=True)
class Stored:
    status: int
    body: Any


class Idempotency:
    def __init__(self, client: aioredis.Redis, namespace: str, ttl_s: int) -> None:
        self._client = client
        self._namespace = namespace
        self._ttl_s = ttl_s

    def _key(self, user_id: str, route: str, key: str) -> str:
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        return keys.idempotency(self._namespace, route, user_id, digest)

    async def begin(self, user_id: str, route: str, key: str, body: bytes) -> Stored | None:
        """None: go ahead (and call `complete` or `abandon`). Stored: answer with it."""
        if not key or len(key) > MAX_KEY_LENGTH:
            raise ApiError(422, "invalid_idempotency_key", f"1 to {MAX_KEY_LENGTH} characters.")
        redis_key = self._key(user_id, route, key)
        fingerprint = hashlib.sha256(body).hexdigest()
        pending = orjson.dumps({"state": "pending", "fp": fingerprint})
        try:
            if await self._client.set(redis_key, pending, nx=True, ex=PENDING_TTL_S):
                return None
            raw = await self._client.get(redis_key)
        except RedisError as exc:
            raise DependencyUnavailable("redis", f"idempotency store unavailable: {exc}") from exc
        if raw is None:  # expired between the two calls: treat as new
            return await self.begin(user_id, route, key, body)
        record = orjson.loads(raw)
        if record["fp"] != fingerprint:
            raise ApiError(
                422,
                "idempotency_key_reused",
                "This Idempotency-Key was used with a different request body.",
            )
        if record["state"] == "pending":
            raise ApiError(
                409,
                "idempotency_in_progress",
                "A request with this Idempotency-Key is still in progress.",
                retry_after_ms=1000,
                headers={"Retry-After": "1"},
            )
        return Stored(record["status"], record["body"])

    async def complete(
        self, user_id: str, route: str, key: str, body: bytes, status: int, answer: Any
    ) -> None:
        record = {
            "state": "done",
            "fp": hashlib.sha256(body).hexdigest(),
            "status": status,
            "body": answer,
        }
        try:
            await self._client.set(
                self._key(user_id, route, key), orjson.dumps(record), ex=self._ttl_s
            )
        except RedisError as exc:
            # The event is durable already; a retry would produce a duplicate event id,
            # which the agents' dedup absorbs (the id is derived from the key).
            log.warning("idempotency answer not stored", route=route, error=str(exc))

    async def abandon(self, user_id: str, route: str, key: str) -> None:
        """The first attempt failed: let a retry run for real."""
        try:
            await self._client.delete(self._key(user_id, route, key))
        except RedisError as exc:
            log.warning("idempotency key not released; it expires by itself", error=str(exc))
