"""A consumed Kafka record, as every stage reads it (aiokafka's `ConsumerRecord` is one):
the deciding agents (`streams/runtime/outputs.py`) and the projections
(`projections/tables.py`) take this, so their rules need no Kafka client."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class Record(Protocol):
    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...
