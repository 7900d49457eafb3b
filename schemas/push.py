"""The push contract: what a WebSocket client receives (the Redis keys: `schemas.keys`).

The push and status projectors store each message, as sent, in a Redis Stream entry's
`STREAM_FIELD`; the gateway relays it (adding the `cursor` to a job step).
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, Field

from schemas.events import CountedData

STREAM_FIELD = "event"
TRACE_FIELD = "traceparent"  # beside it when tracing is on: the gateway's send continues it
JOBS_STREAM_MAXLEN = 1000

# Close codes of `WS /v1/ws` beyond the standard ones a client acts on.
CLOSE_POLICY = 1008  # bad parameters or credential: fix the request, do not retry as is
CLOSE_RECONNECT = 1012  # the gateway is draining: reconnect (to another node) and resume
CLOSE_UNAVAILABLE = 1011  # Redis unavailable: retry with backoff and resume
CLOSE_SLOW = 4008  # the client read too slowly (its send buffer filled): resume from last seen


class EventMessage(BaseModel):
    """`WS /v1/ws` (channel `events`): one of the user's events, with its sequence number."""

    seq: int = Field(ge=1)
    id: str = Field(description="The counted event's CloudEvents id.")
    type: str = Field(description="The client event's type.")
    time: str
    data: dict[str, Any]


class JobStepMessage(BaseModel):
    """`WS /v1/ws?channel=jobs`: one job step; resume after it with `cursor`."""

    id: str
    type: str
    time: str
    data: dict[str, Any] = Field(description="The step's data: `schemas.jobs.JobStep`.")
    cursor: str | None = None


class ResumeMessage(BaseModel):
    """The first message on every channel: whether what follows is complete.

    Channel `events`: `recovered` true when every seq after `since` follows (from Redis,
    and from ClickHouse for what Redis no longer holds); false when some are gone from both:
    messages then start at `earliest`. `filled` counts those served from ClickHouse.
    `since` null (none asked): live events only, from after `last`.
    Channels `jobs` and `container`: `recovered` false when entries after `cursor` were
    trimmed from the stream; `earliest` is then the first cursor still held.
    """

    control: str = "resume"
    recovered: bool
    since: int | None = None
    cursor: str | None = None
    earliest: int | str | None = None
    last: int | str | None = Field(default=None, description="The last seq or cursor held.")
    filled: int = 0


def encode_notice(streams: set[str]) -> bytes:
    """A push notice: the stream keys a projector batch appended to."""
    return orjson.dumps(sorted(streams))


def decode_notice(data: bytes) -> list[str]:
    """The stream keys a notice names ([] for anything else)."""
    try:
        streams = orjson.loads(data)
    except orjson.JSONDecodeError:
        return []
    return [s for s in streams if isinstance(s, str)] if isinstance(streams, list) else []


def push_payload(counted: CountedData, event_id: str, time: str) -> bytes:
    """The stored message of a counted event."""
    message = EventMessage(
        seq=counted.seq, id=event_id, type=counted.source_type, time=time, data=counted.data
    )
    return message.model_dump_json().encode()


def job_payload(event_id: str, event_type: str, time: str, data: dict[str, Any]) -> bytes:
    """The stored message of a job step (without its cursor: the stream entry's id)."""
    message = JobStepMessage(id=event_id, type=event_type, time=time, data=data)
    return message.model_dump_json(exclude_none=True).encode()


def with_cursor(stored: bytes, cursor: str) -> str:
    """A stored job step as sent: with the entry id a client resumes after."""
    message = JobStepMessage.model_validate_json(stored)
    return message.model_copy(update={"cursor": cursor}).model_dump_json()
