"""Models of the HTTP API's answers, shared by the gateway and its clients."""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.envelope import (
    CONTENT_TYPE,
    SPECVERSION,
    TYPE_PATTERN,
    USER_ID_PATTERN,
    EventData,
)


class Accepted(BaseModel):
    """202: the event is durable on the broker (acks=all) at this position."""

    id: str
    topic: str
    partition: int
    offset: int


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer: a machine-readable `error` code and a readable `message`."""

    error: str
    message: str
    detail: list[dict[str, Any]] | None = None
    retry_after_ms: int | None = None


class EventIn(BaseModel):
    """An event as a client posts it. `subject` (the user) comes from the credential;
    if given it must match it. Without auth (local dev) it is required."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, min_length=1, max_length=128)
    source: str = Field(min_length=1, max_length=256)
    type: str = Field(pattern=TYPE_PATTERN)
    specversion: str = Field(default=SPECVERSION, pattern=r"^1\.0$")
    # RFC 3339, as CloudEvents says: with its offset (a time without one is 422).
    time: AwareDatetime | None = None
    subject: str | None = Field(default=None, pattern=USER_ID_PATTERN)
    datacontenttype: str = Field(default=CONTENT_TYPE, pattern=r"^application/json$")
    data: EventData = Field(default_factory=dict)


class BatchIn(BaseModel):
    """Up to `TRIBUTARY_MAX_BATCH_EVENTS` events; each is validated on its own."""

    model_config = ConfigDict(extra="forbid")

    events: list[dict[str, Any]] = Field(min_length=1)


class ItemResult(BaseModel):
    """One event of a batch: 202 with its position, or its own 4xx with the reason."""

    index: int
    status: int
    id: str | None = None
    partition: int | None = None
    offset: int | None = None
    error: str | None = None
    message: str | None = None


class BatchResult(BaseModel):
    accepted: int
    rejected: int
    results: list[ItemResult]
