from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.envelope import (
    CloudEvent,
    EnvelopeError,
    from_kafka,
    from_kafka_lenient,
    header_value,
    to_kafka,
)

user_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.@:-]{0,30}", fullmatch=True)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(
    user=user_ids,
    data=st.dictionaries(st.text(max_size=10), json_values, max_size=5),
    when=st.datetimes(min_value=datetime(2000, 1, 1), timezones=st.just(UTC)),
)
def test_binary_mode_round_trip(user: str, data: dict, when: datetime) -> None:
    schema = "urn:tributary:schema:tributary.event:1"
    event = CloudEvent(
        source="test", type="t.x", subject=user, time=when, data=data, dataschema=schema
    )
    key, value, headers = to_kafka(event, {"traceparent": "00-abc-def-01"})
    assert key == user.encode()
    assert from_kafka(value, headers) == event
    assert from_kafka_lenient(value, headers) == (
        event.id,
        event.source,
        event.type,
        event.subject,
        event.time,
        event.data,
        schema,
    )
    assert header_value(headers, "traceparent") == "00-abc-def-01"
    assert header_value(headers, "ce_subject") == user


def test_missing_headers_are_named() -> None:
    with pytest.raises(EnvelopeError, match="ce_subject"):
        from_kafka(b"{}", [("ce_id", b"1"), ("ce_source", b"s"), ("ce_type", b"t")])


@pytest.mark.parametrize("value", [b"not json", b"[1, 2]"])
def test_value_must_be_a_json_object(value: bytes) -> None:
    headers = [("ce_id", b"1"), ("ce_source", b"s"), ("ce_type", b"t"), ("ce_subject", b"u")]
    with pytest.raises(EnvelopeError):
        from_kafka(value, headers)


def test_invalid_user_id_is_refused() -> None:
    with pytest.raises(ValueError):
        CloudEvent(source="s", type="t", subject="has space")


@pytest.mark.parametrize(
    "data",
    [
        {"n": 2**64},
        {"n": -(2**63) - 1},
        {"deep": json.loads("[" * 300 + "]" * 300)},
        {"x": float("nan")},
        {"a": [1.5, {"b": float("-inf")}]},
    ],
)
def test_data_that_cannot_be_stored_as_json_is_refused(data: dict) -> None:
    """Found by schemathesis: a 65-bit integer used to pass validation and fail the encode."""
    with pytest.raises(ValueError, match="cannot be stored as JSON"):
        CloudEvent(source="s", type="t", subject="u", data=data)
    assert CloudEvent(source="s", type="t", subject="u", data={"n": 2**63 - 1}).data


@pytest.mark.parametrize(
    ("value", "drop"),
    [(b"{}", "ce_id"), (b"[1]", None), (b"nope", None), (b"{}", "ce_subject")],
)
def test_lenient_decoder_still_refuses_what_a_row_cannot_hold(
    value: bytes, drop: str | None
) -> None:
    _, _, headers = to_kafka(CloudEvent(source="s", type="t", subject="u"))
    headers = [(k, v) for k, v in headers if k != drop]
    with pytest.raises(EnvelopeError):
        from_kafka_lenient(value, headers)


def test_lenient_decoder_refuses_a_bad_time() -> None:
    _, value, headers = to_kafka(CloudEvent(source="s", type="t", subject="u"))
    headers = [(k, b"yesterday" if k == "ce_time" else v) for k, v in headers]
    with pytest.raises(EnvelopeError):
        from_kafka_lenient(value, headers)
