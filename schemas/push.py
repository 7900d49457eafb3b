"""The push contract: where a user's live events wait in Redis, and what a client receives."""

from __future__ import annotations

from typing import Any

import orjson


def user_tag(user_id: str) -> str:
    """`{user_id}`: a Redis Cluster hash tag, so every key of a user lives in one slot and a
    script may touch several of them (user ids hold no braces: `USER_ID_PATTERN`)."""
    return f"{{{user_id}}}"


def stream_key(namespace: str, user_id: str) -> str:
    """The Redis Stream of `user_id`'s sequenced events; entry ids are `<seq>-0`."""
    return f"{namespace}:push:{user_tag(user_id)}"


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


JOBS_STREAM_MAXLEN = 1000


def jobs_stream_key(namespace: str, user_id: str) -> str:
    """The Redis Stream of `user_id`'s job steps (queued, active, progress, ...)."""
    return f"{namespace}:push-jobs:{user_tag(user_id)}"


def job_payload(event_id: str, event_type: str, time: str, data: dict[str, Any]) -> bytes:
    """One job step as stored: `{id, type, time, data}`; the WebSocket adds its `cursor`."""
    return orjson.dumps({"id": event_id, "type": event_type, "time": time, "data": data})
