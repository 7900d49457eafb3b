"""The push contract: what a WebSocket client receives (the Redis keys: `schemas.keys`).

The push and status projectors store each message, as sent, in a Redis Stream entry's
`STREAM_FIELD`; the gateway relays it (adding the `cursor` to a job step).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from schemas.events import CountedData

STREAM_FIELD = "event"
JOBS_STREAM_MAXLEN = 1000


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
