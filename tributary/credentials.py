"""What every Tributary credential shares: where a request presents it, how it is stored.

Users' API keys (`gateway.auth`) and admin keys (`tributary.admin`) are 256 random bits,
stored only as their SHA-256, and sent as `X-API-Key: <key>` or `Authorization: Bearer`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping


def hash_key(key: str) -> str:
    """What is stored for a key: its SHA-256 (keys are 256-bit random, no salt needed)."""
    return hashlib.sha256(key.encode()).hexdigest()


def presented(headers: Mapping[str, str]) -> str | None:
    """The credential in `headers` (lower-case names): `X-API-Key`, else a Bearer token."""
    key = headers.get("x-api-key")
    authorization = headers.get("authorization", "")
    if key is None and authorization.lower().startswith("bearer "):
        key = authorization[7:].strip()
    return key or None
