"""Models of the HTTP API's answers, shared by the gateway and its clients."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


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
