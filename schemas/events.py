"""`data` of the events on `events.ingest` (a client's) and `events.counted` (ours)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, RootModel

# Any type a client posts; its `data` is the client's own JSON object.
CLIENT_EVENT = "tributary.event"
COUNTED_TYPE = "tributary.event.counted"


class ClientEvent(RootModel[dict[str, Any]]):
    """`data` of a client's event on `events.ingest`: any JSON object the client sent (its
    CloudEvents `type` is the client's too). Tributary adds no fields to it."""


class CountedData(BaseModel):
    """`data` of `tributary.event.counted`: the client's event and its per-user sequence."""

    model_config = ConfigDict(frozen=True)

    source_id: str = Field(description="The client event's CloudEvents id.")
    source_type: str = Field(description="The client event's CloudEvents type.")
    seq: int = Field(ge=1, description="1, 2, 3… per user, without gaps, in Kafka order.")
    data: dict[str, Any] = Field(description="The client event's data, unchanged.")
