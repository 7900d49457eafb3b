from __future__ import annotations

from schemas.envelope import CloudEvent
from schemas.events import COUNTED_TYPE, CountedData
from streams.events.sequencing import derived_id, stamp


def test_stamp_numbers_the_users_events() -> None:
    event = CloudEvent(source="s", type="click", subject="u1", data={"n": 1})
    seq, out = stamp(event, 41)
    assert seq == 42
    assert out.subject == "u1"
    assert out.type == COUNTED_TYPE
    assert out.time == event.time
    assert CountedData(**out.data) == CountedData(
        source_id=event.id, source_type="click", seq=42, data={"n": 1}
    )


def test_reprocessing_gives_the_same_output_id() -> None:
    event = CloudEvent(source="s", type="click", subject="u1")
    assert stamp(event, 0)[1].id == stamp(event, 0)[1].id
    assert derived_id("a", "counted") != derived_id("a", "rejected")
    assert derived_id("a", "counted") != derived_id("b", "counted")
