"""The push contract: where a user's live events wait in Redis, and what a client receives."""

from __future__ import annotations

from typing import Any

import orjson


def stream_key(namespace: str, user_id: str) -> str:
    """The Redis Stream of `user_id`'s sequenced events; entry ids are `<seq>-0`."""
    return f"{namespace}:push:{user_id}"


def push_payload(seq: int, event_id: str, time: str, data: dict[str, Any]) -> bytes:
    """One WebSocket message: `{seq, id, type, time, data}` of a `counted` event's data."""
    return orjson.dumps(
        {
            "seq": seq,
            "id": event_id,
            "type": data.get("source_type"),
            "time": time,
            "data": data.get("data"),
        }
    )
