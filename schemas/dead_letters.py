"""A dead letter: the record that could not be processed, as it was, plus why and where from.

The DLQ keeps the failed record's key, value and headers unchanged (it may not even be a
CloudEvent: that can be why it failed) and adds `x-tributary-reason`, `-error` and
`-origin`. This model is those three headers, written and read in one place.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, Field

from schemas import headers as h
from schemas.envelope import header_value

MAX_ERROR_CHARS = 2000


class Origin(BaseModel):
    """Where a record was: a Kafka position. On the wire `topic:partition:offset`."""

    topic: str
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)

    def __str__(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"

    @classmethod
    def parse(cls, text: str) -> Origin | None:
        """The origin `text` names, or None when it is not `topic:partition:offset`."""
        topic, _, rest = text.rpartition(":")
        topic, _, partition = topic.rpartition(":")
        if not topic or not partition.isdigit() or not rest.isdigit():
            return None
        return cls(topic=topic, partition=int(partition), offset=int(rest))


class DeadLetter(BaseModel):
    """Why a record was dead-lettered and where it came from."""

    reason: str = Field(description="A machine-readable cause: invalid_envelope, timed_out, ...")
    error: str = Field(max_length=MAX_ERROR_CHARS, description="The error, for people.")
    origin: Origin

    @classmethod
    def of(cls, reason: str, error: str, origin: Origin) -> DeadLetter:
        return cls(reason=reason, error=error[:MAX_ERROR_CHARS], origin=origin)

    def headers(self, original: Iterable[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        """The record's own headers, then ours (replacing any from an earlier letter)."""
        merged = dict(original)
        merged.update(
            {
                h.REASON: self.reason.encode(),
                h.ERROR: self.error.encode(),
                h.ORIGIN: str(self.origin).encode(),
            }
        )
        return list(merged.items())

    @classmethod
    def from_headers(cls, record_headers: Sequence[tuple[str, bytes]]) -> DeadLetter | None:
        """The letter's reason, error and origin; None if the origin is missing or malformed."""
        found = {k: v.decode(errors="replace") for k, v in record_headers if v is not None}
        origin = Origin.parse(found.get(h.ORIGIN, ""))
        if origin is None:
            return None
        return cls(reason=found.get(h.REASON) or "?", error=found.get(h.ERROR, ""), origin=origin)


def origin_topic(record_headers: Sequence[tuple[str, bytes]]) -> str | None:
    """The topic a letter came from: from `topic:partition:offset`, or from the form the
    executors wrote until the contract fixed it, `topic:job:<job id>` (the DLQ keeps letters
    30 days, so those can still be retried)."""
    text = next((v.decode(errors="replace") for k, v in record_headers if k == h.ORIGIN), "")
    origin = Origin.parse(text)
    if origin is not None:
        return origin.topic
    topic, found, _ = text.partition(":job:")
    return topic if found and topic else None


def without_letter(record_headers: Iterable[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """The failed record's own headers, without the dead letter's."""
    return [(k, v) for k, v in record_headers if k not in h.DEAD_LETTER_HEADERS]


@dataclass(frozen=True)
class Letter:
    """A record on the DLQ topic, where it is there, and why it is there (`info`)."""

    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]

    @property
    def position(self) -> str:
        return f"{self.partition}:{self.offset}"

    @property
    def info(self) -> DeadLetter | None:
        """Reason, error and origin; None for a record on the DLQ without a valid origin."""
        return DeadLetter.from_headers(self.headers)

    @property
    def reason(self) -> str:
        return header_value(self.headers, h.REASON) or "?"

    @property
    def error(self) -> str:
        return header_value(self.headers, h.ERROR) or ""

    @property
    def origin(self) -> str:
        return header_value(self.headers, h.ORIGIN) or "?"

    def original_headers(self) -> list[tuple[str, bytes]]:
        return without_letter(self.headers)
