"""Per-user sequence stamping (pure): the owning agent numbers each user's events 1, 2, 3…"""

from __future__ import annotations

import uuid

from schemas.envelope import CloudEvent
from schemas.events import COUNTED_TYPE, CountedData

SOURCE = "tributary/streams/counter"
_ID_NAMESPACE = uuid.UUID("6f1d1f3e-6a55-4c4b-9a0e-7c3b8f0e5a21")


def derived_id(event_id: str, kind: str) -> str:
    """A deterministic id for the `kind` result of `event_id`: reprocessing gives the same id."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"{event_id}:{kind}"))


def stamp(event: CloudEvent, previous_seq: int) -> tuple[int, CloudEvent]:
    """The user's next sequence number and the `counted` event that carries it."""
    seq = previous_seq + 1
    out = CloudEvent(
        id=derived_id(event.id, "counted"),
        source=SOURCE,
        type=COUNTED_TYPE,
        time=event.time,
        subject=event.subject,
        data=CountedData(
            source_id=event.id, source_type=event.type, seq=seq, data=event.data
        ).model_dump(),
    )
    return seq, out
