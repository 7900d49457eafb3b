"""One partition's tables for the transactional loop (pure: no I/O).

A table is a key → JSON value map, backed by a compacted changelog topic whose partition
matches the input partition. While a batch is processed, writes go to a pending layer;
they become changelog records in the batch's transaction and are applied to the table's
store only after it commits (`apply`), or dropped if it aborts (`discard`). So the store
always equals the changelog's committed records.

The store is where the committed entries live: a dict here (`MemoryStore`), or RocksDB on
disk (`streams.runtime.stores.RocksStore`), chosen by `TRIBUTARY_STATE_BACKEND`. Either is filled
from the changelog when a partition is assigned; the changelog stays the truth.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

import orjson

_DELETED = object()  # a pending delete
_ABSENT = object()  # no pending write


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


class Store(Protocol):
    """A table's committed entries."""

    def get(self, key: str) -> Any:
        """The value, or None when the key is absent."""
        ...

    def items(self) -> Iterator[tuple[str, Any]]: ...

    def write(self, changes: Iterable[tuple[str, Any]]) -> None:
        """Apply (key, value) changes in order, all at once; a None value deletes."""
        ...


class MemoryStore:
    """A table's entries in a dict: the fastest reads, and all of it in the process's memory
    (about 470 bytes per user of limit state)."""

    def __init__(self) -> None:
        self._data: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        return self._data.get(key)

    def items(self) -> Iterator[tuple[str, Any]]:
        return iter(list(self._data.items()))

    def write(self, changes: Iterable[tuple[str, Any]]) -> None:
        for key, value in changes:
            if value is None:
                self._data.pop(key, None)
            else:
                self._data[key] = value


class Table:
    """A view of one table during a batch: reads see the batch's own writes."""

    def __init__(self, store: Store | None = None) -> None:
        self._store: Store = MemoryStore() if store is None else store
        self._pending: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        value = self._pending.get(key, _ABSENT)
        if value is _ABSENT:
            value = self._store.get(key)
        return default if value is None or value is _DELETED else value

    def __setitem__(self, key: str, value: Any) -> None:
        self._pending[key] = value

    def __delitem__(self, key: str) -> None:
        self._pending[key] = _DELETED

    def items(self) -> Iterator[tuple[str, Any]]:
        """Committed entries (a batch's own writes are not included)."""
        return self._store.items()

    def changes(self) -> list[tuple[str, Any]]:
        return [(k, None if v is _DELETED else v) for k, v in self._pending.items()]

    def apply(self) -> None:
        if self._pending:
            self._store.write(self.changes())
            self._pending.clear()

    def discard(self) -> None:
        self._pending.clear()

    def restore(self, records: Iterable[tuple[str, Any]]) -> None:
        """Records read back from the changelog, in order (None: deleted)."""
        self._store.write(records)


class Tables:
    """Every table of one agent for one partition, and what happened to the current batch's
    records (`count`): like the writes, that counts only once the batch commits."""

    def __init__(self, names: tuple[str, ...], stores: dict[str, Store] | None = None) -> None:
        stores = stores or {}
        self._tables = {name: Table(stores.get(name)) for name in names}
        self._outcomes: Counter[str] = Counter()

    def count(self, outcome: str) -> None:
        """One record of the batch had this outcome (`counted`, `duplicate`, ...)."""
        self._outcomes[outcome] += 1

    def __getitem__(self, name: str) -> Table:
        return self._tables[name]

    def changes(self) -> Iterator[tuple[str, str, Any]]:
        """(table, key, value or None) for every write of the current batch."""
        for name, table in self._tables.items():
            for key, value in table.changes():
                yield name, key, value

    def apply(self) -> Counter[str]:
        """The batch committed: its writes go to the stores; its records' outcomes."""
        for table in self._tables.values():
            table.apply()
        outcomes, self._outcomes = self._outcomes, Counter()
        return outcomes

    def discard(self) -> None:
        for table in self._tables.values():
            table.discard()
        self._outcomes.clear()


class Backend(Protocol):
    """Where the tables of the partitions a loop owns keep their committed entries."""

    def open(self, partition: int, names: tuple[str, ...]) -> Tables:
        """The partition's tables, empty (anything kept from an earlier owner is dropped:
        they are restored from the changelog next)."""
        ...

    def release(self, partition: int) -> None:
        """The partition is no longer ours: free what its tables hold."""
        ...

    def close(self) -> None: ...


class MemoryBackend:
    def open(self, partition: int, names: tuple[str, ...]) -> Tables:
        return Tables(names)

    def release(self, partition: int) -> None:
        pass

    def close(self) -> None:
        pass


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
