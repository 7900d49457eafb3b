"""One partition's tables for the transactional loop (pure: no I/O).

A table is a dict of JSON values, backed by a compacted changelog topic whose partition
matches the input partition. While a batch is processed, writes go to a pending layer;
they become changelog records in the batch's transaction and are applied only after it
commits (`apply`), or dropped if it aborts (`discard`). So the in-memory state always
equals the changelog's committed records.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

_DELETED = object()


def encode(key: str, value: Any) -> tuple[bytes, bytes | None]:
    """A changelog record's key and value: JSON, as Faust wrote them; None is a tombstone."""
    return orjson.dumps(key), None if value is None else orjson.dumps(value)


def decode(key: bytes | None, value: bytes | None) -> tuple[str, Any] | None:
    """The (key, value) of a changelog record; None for one that is not ours (skipped)."""
    if key is None:
        return None
    try:
        name = orjson.loads(key)
        data = None if value is None else orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return (name, data) if isinstance(name, str) else None


class Table:
    """A view of one table during a batch: reads see the batch's own writes."""

    def __init__(self, committed: dict[str, Any]) -> None:
        self._committed = committed
        self._pending: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        value = self._pending.get(key, self._committed.get(key, default))
        return default if value is _DELETED else value

    def __setitem__(self, key: str, value: Any) -> None:
        self._pending[key] = value

    def __delitem__(self, key: str) -> None:
        self._pending[key] = _DELETED

    def items(self) -> Iterator[tuple[str, Any]]:
        """Committed entries (a batch's own writes are not included)."""
        return iter(list(self._committed.items()))

    def changes(self) -> list[tuple[str, Any]]:
        return [(k, None if v is _DELETED else v) for k, v in self._pending.items()]

    def apply(self) -> None:
        for key, value in self._pending.items():
            if value is _DELETED:
                self._committed.pop(key, None)
            else:
                self._committed[key] = value
        self._pending.clear()

    def discard(self) -> None:
        self._pending.clear()

    def restore(self, key: str, value: Any) -> None:
        """A record read back from the changelog (None: deleted)."""
        if value is None:
            self._committed.pop(key, None)
        else:
            self._committed[key] = value

    def __len__(self) -> int:
        return len(self._committed)


class Tables:
    """Every table of one agent for one partition."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self._tables = {name: Table({}) for name in names}

    def __getitem__(self, name: str) -> Table:
        return self._tables[name]

    def changes(self) -> Iterator[tuple[str, str, Any]]:
        """(table, key, value or None) for every write of the current batch."""
        for name, table in self._tables.items():
            for key, value in table.changes():
                yield name, key, value

    def apply(self) -> None:
        for table in self._tables.values():
            table.apply()

    def discard(self) -> None:
        for table in self._tables.values():
            table.discard()


def seen_before(table: Table, key: str, at_ms: int, ttl_ms: int) -> bool:
    """Dedup in event time: `key` was recorded within `ttl_ms` of `at_ms`."""
    recorded = table.get(key)
    return recorded is not None and abs(at_ms - int(recorded)) < ttl_ms


def forget_expired(seen: Table, now_ms: int, ttl_ms: int) -> None:
    """Forget keys recorded more than two TTLs before `now_ms` (event time), so a record up
    to a TTL late is still judged right; sweeps at most once per tenth of a TTL."""
    if now_ms - int(seen.get(_SWEPT, 0)) < ttl_ms // 10:
        return
    for key, at in seen.items():
        if now_ms - int(at) > 2 * ttl_ms:
            del seen[key]
    seen[_SWEPT] = now_ms


_SWEPT = "~swept"  # the dedup tables' bookkeeping key (theirs are `user/id`)
