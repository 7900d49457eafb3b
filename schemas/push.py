"""The push contract: what a WebSocket client receives (the Redis keys: `schemas.keys`)."""

from __future__ import annotations

from typing import Any

import orjson

from schemas.events import CountedData


def push_payload(counted: CountedData, event_id: str, time: str) -> bytes:
    """One WebSocket message: `{seq, id, type, time, data}` of a counted event."""
    return orjson.dumps(
        {
            "seq": counted.seq,
            "id": event_id,
            "type": counted.source_type,
            "time": time,
            "data": counted.data,
        }
    )


JOBS_STREAM_MAXLEN = 1000


def job_payload(event_id: str, event_type: str, time: str, data: dict[str, Any]) -> bytes:
    """One job step as stored: `{id, type, time, data}`; the WebSocket adds its `cursor`."""
    return orjson.dumps({"id": event_id, "type": event_type, "time": time, "data": data})
