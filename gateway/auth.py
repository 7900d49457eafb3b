"""Who is calling: API keys (stored hashed in Redis) or JWT bearer tokens (HS256/RS256).

The user id always comes from the credential, never from the request body.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

import jwt
import redis.asyncio as aioredis
from cachetools import TTLCache
from fastapi import Request
from redis.exceptions import RedisError
from starlette.requests import HTTPConnection

from gateway.errors import ApiError, DependencyUnavailable
from schemas import keys
from schemas.envelope import USER_ID_PATTERN
from tributary.credentials import hash_key, presented
from tributary.settings import Settings

API_KEY_PREFIX = "trb_"
_USER_ID = re.compile(USER_ID_PATTERN)


@dataclass(frozen=True)
class Principal:
    user_id: str
    method: str  # "api_key" | "jwt" | "anonymous"


async def create_api_key(client: aioredis.Redis, namespace: str, user_id: str) -> str:
    """Make a new API key for `user_id`; only its hash is stored. Returns the key."""
    if not _USER_ID.fullmatch(user_id):
        raise ValueError(f"not a user id: {user_id!r} (pattern {USER_ID_PATTERN})")
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    await client.hset(keys.api_keys(namespace), hash_key(key), user_id)
    return key


def _unauthenticated(error: str, message: str) -> ApiError:
    return ApiError(401, error, message, headers={"WWW-Authenticate": 'Bearer realm="tributary"'})


class Authenticator:
    """Resolves a request's credential to a `Principal`, or raises 401/503."""

    def __init__(self, settings: Settings, client: aioredis.Redis) -> None:
        self._settings = settings
        self._client = client
        # Known keys only (an unknown one is asked again, so a new key works at once); a
        # revoked key keeps working here for up to `api_key_cache_s`.
        self._known: TTLCache[str, Principal] | None = (
            TTLCache(maxsize=100_000, ttl=settings.api_key_cache_s)
            if settings.api_key_cache_s > 0
            else None
        )
        self._jwt_keys: list[tuple[str, str]] = []
        if settings.jwt_hs256_secret:
            self._jwt_keys.append(("HS256", settings.jwt_hs256_secret))
        if settings.jwt_rs256_public_key:
            self._jwt_keys.append(("RS256", settings.jwt_rs256_public_key))

    async def __call__(self, request: HTTPConnection) -> Principal | None:
        if not self._settings.auth_enabled:
            return None
        token = presented(request.headers)
        if token is None and request.scope["type"] == "websocket":
            # Browsers cannot set headers on a WebSocket: accept the credential as a query param.
            token = request.query_params.get("api_key") or request.query_params.get("token")
        if not token:
            raise _unauthenticated("unauthenticated", "Send an API key or a Bearer token.")
        return await self.token(token)

    async def token(self, token: str) -> Principal:
        """The caller an API key or JWT presented some other way (a WebSocket's first
        message) stands for, or 401/503."""
        if token.startswith(API_KEY_PREFIX):
            return await self._api_key(token)
        return self._jwt(token)

    async def _api_key(self, key: str) -> Principal:
        # Cached by the key as presented: hashing it is needed only to ask Redis.
        if self._known is not None and (known := self._known.get(key)) is not None:
            return known
        try:
            stored = keys.api_keys(self._settings.namespace)
            user_id = await self._client.hget(stored, hash_key(key))
        except RedisError as exc:
            raise DependencyUnavailable("redis", f"cannot check API keys: {exc}") from exc
        if user_id is None:
            raise _unauthenticated("invalid_api_key", "Unknown or revoked API key.")
        principal = Principal(
            user_id.decode() if isinstance(user_id, bytes) else user_id, "api_key"
        )
        if self._known is not None:
            self._known[key] = principal
        return principal

    def _jwt(self, token: str) -> Principal:
        if not self._jwt_keys:
            raise _unauthenticated("invalid_token", "JWT bearer tokens are not enabled here.")
        try:
            algorithm = jwt.get_unverified_header(token).get("alg")
        except jwt.InvalidTokenError as exc:
            raise _unauthenticated("invalid_token", f"Malformed token: {exc}") from exc
        key = next((k for alg, k in self._jwt_keys if alg == algorithm), None)
        if key is None:
            raise _unauthenticated("invalid_token", f"Algorithm {algorithm!r} is not accepted.")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[str(algorithm)],
                audience=self._settings.jwt_audience,
                options={"require": ["exp", "sub", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise _unauthenticated("token_expired", "The token has expired.") from exc
        except jwt.InvalidAudienceError as exc:
            raise _unauthenticated(
                "invalid_audience", "The token is for another audience."
            ) from exc
        except jwt.InvalidTokenError as exc:
            raise _unauthenticated("invalid_token", str(exc)) from exc
        user_id = str(claims["sub"])
        if not _USER_ID.fullmatch(user_id):
            # Authentic, but not a user id events can be keyed by (e.g. `auth0|123`).
            raise ApiError(
                403,
                "invalid_subject",
                f"The token's `sub` is not a user id here (pattern {USER_ID_PATTERN}).",
            )
        return Principal(user_id, "jwt")


async def authenticate(request: Request) -> Principal | None:
    """FastAPI dependency: the caller, or None when auth is disabled (local dev)."""
    return await request.app.state.auth(request)  # type: ignore[no-any-return]
