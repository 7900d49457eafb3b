"""Payloads of the events Tributary itself emits (the `data` of its CloudEvents)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

COUNTED_TYPE = "tributary.event.counted"


class CountedData(BaseModel):
    """`data` of an `events.counted` event: the input event and the user's sequence."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source_id: str
    source_type: str
    seq: int
    data: dict[str, Any]
