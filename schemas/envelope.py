"""CloudEvents 1.0 envelope and its Kafka binary content mode.

On Kafka the event's attributes travel as `ce_*` headers and the record value is
the JSON of `data` alone, so any CloudEvents-aware consumer can read our topics.
The record key is the user id (the event's `subject`), which is what keeps one
user's events in one partition and therefore in order.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, NamedTuple

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from schemas import contracts
from schemas import headers as h

SPECVERSION = "1.0"
CONTENT_TYPE = "application/json"

# Ids, sources, types: printable, bounded. A user id must be safe as a Kafka key,
# a Redis key part and a container name part.
USER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@:-]{0,127}$"
TYPE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"


def _encodable(data: dict[str, Any]) -> dict[str, Any]:
    """`data` must serialize as we store it: integers within 64 bits, nesting under 255,
    and no NaN or Infinity (which the JSON parsers here accept, and orjson would store as
    null without a word)."""
    try:
        orjson.dumps(data)
    except orjson.JSONEncodeError as exc:
        raise ValueError(f"data cannot be stored as JSON: {exc}") from None
    if not _finite(data):
        raise ValueError("data cannot be stored as JSON: NaN and Infinity are not JSON numbers")
    return data


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return True


EventData = Annotated[dict[str, Any], AfterValidator(_encodable)]


def new_event_id() -> str:
    """A fresh event id (UUIDv4, text)."""
    return str(uuid.uuid4())


def utcnow() -> datetime:
    return datetime.now(UTC)


class CloudEvent(BaseModel):
    """One event as Tributary stores it: CloudEvents 1.0 attributes plus `data`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(default_factory=new_event_id, min_length=1, max_length=128)
    source: str = Field(min_length=1, max_length=256)
    type: str = Field(pattern=TYPE_PATTERN)
    specversion: str = Field(default=SPECVERSION, pattern=r"^1\.0$")
    time: datetime = Field(default_factory=utcnow)
    subject: str = Field(
        pattern=USER_ID_PATTERN,
        description="The user id the event belongs to; the Kafka key.",
    )
    datacontenttype: str = Field(default=CONTENT_TYPE, pattern=r"^application/json$")
    dataschema: str | None = Field(
        default=None,
        max_length=256,
        description="The schema of `data`; None: the registry's current one for `type`.",
    )
    data: EventData = Field(default_factory=dict)

    @property
    def user_id(self) -> str:
        return self.subject


Headers = list[tuple[str, bytes]]


def to_kafka(
    event: CloudEvent, extra_headers: dict[str, str] | None = None
) -> tuple[bytes, bytes, Headers]:
    """Encode `event` in binary content mode: (key, value, headers). `dataschema` is the
    event's own, else the registry's for its type (none for a type the registry lacks)."""
    headers: Headers = [
        (h.CE_SPECVERSION, event.specversion.encode()),
        (h.CE_ID, event.id.encode()),
        (h.CE_SOURCE, event.source.encode()),
        (h.CE_TYPE, event.type.encode()),
        (h.CE_SUBJECT, event.subject.encode()),
        (h.CE_TIME, event.time.isoformat().encode()),
        (h.CONTENT_TYPE, event.datacontenttype.encode()),
    ]
    schema = event.dataschema or (
        contracts.dataschema(event.type) if contracts.known(event.type) else None
    )
    if schema is not None:
        headers.append((h.CE_DATASCHEMA, schema.encode()))
    for name, value in (extra_headers or {}).items():
        headers.append((name, value.encode()))
    return event.subject.encode(), orjson.dumps(event.data), headers


class EnvelopeError(ValueError):
    """A Kafka record that is not a valid CloudEvent in binary mode."""


def from_kafka(
    value: bytes | None, headers: Sequence[tuple[str, bytes]] | dict[str, bytes]
) -> CloudEvent:
    """Decode a binary-mode record back into a `CloudEvent`; raises `EnvelopeError`."""
    items = headers.items() if isinstance(headers, dict) else headers
    attrs = {
        k.removeprefix(h.CE_PREFIX): v.decode()
        for k, v in items
        if k.startswith(h.CE_PREFIX) and v is not None
    }
    missing = {"id", "source", "type", "subject"} - attrs.keys()
    if missing:
        raise EnvelopeError(
            f"missing CloudEvents headers: {sorted(h.CE_PREFIX + m for m in missing)}"
        )
    try:
        data = orjson.loads(value) if value else {}
    except orjson.JSONDecodeError as exc:
        raise EnvelopeError(f"value is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise EnvelopeError("value must be a JSON object")
    known = {"id", "source", "type", "specversion", "time", "subject", "dataschema"}
    try:
        return CloudEvent.model_validate(
            {**{k: v for k, v in attrs.items() if k in known}, "data": data}
        )
    except ValueError as exc:
        raise EnvelopeError(str(exc)) from exc


class EventView(NamedTuple):
    """The attributes of a CloudEvent that readers use, without model validation."""

    id: str
    source: str
    type: str
    subject: str
    time: datetime
    data: dict[str, Any]
    dataschema: str | None = None


def from_kafka_lenient(
    value: bytes | None, headers: Sequence[tuple[str, bytes]] | dict[str, bytes]
) -> EventView:
    """Like `from_kafka`, many times faster, for readers of Tributary's own topics (projectors).

    Checks what a reader relies on (the attributes exist, `time` is a timestamp, `data`
    is a JSON object) but not the id/type/subject patterns the gateway already enforced.
    """
    found = headers if isinstance(headers, dict) else dict(headers)
    try:
        raw_time = found.get(h.CE_TIME)
        schema = found.get(h.CE_DATASCHEMA)
        view = EventView(
            found[h.CE_ID].decode(),
            found[h.CE_SOURCE].decode(),
            found[h.CE_TYPE].decode(),
            found[h.CE_SUBJECT].decode(),
            datetime.fromisoformat(raw_time.decode()) if raw_time else utcnow(),
            orjson.loads(value) if value else {},
            schema.decode() if schema is not None else None,
        )
    except KeyError as exc:
        raise EnvelopeError(f"missing CloudEvents header {exc.args[0]}") from exc
    except (ValueError, AttributeError) as exc:
        raise EnvelopeError(f"bad CloudEvents record: {exc}") from exc
    if not isinstance(view.data, dict):
        raise EnvelopeError("value must be a JSON object")
    return view


def header_value(headers: Headers | dict[str, bytes], name: str) -> str | None:
    """The text of header `name`, or None."""
    items = headers.items() if isinstance(headers, dict) else headers
    for key, value in items:
        if key == name and value is not None:
            return value.decode()
    return None
