"""Table stores on disk: RocksDB (PyPI `rocksdict`), one database per loop and process.

A loop's partitions share one database under `<state_dir>/<group>-<pid>.<n>` (n counts the
loops of a group in the process: tests run two side by side); each table of a
partition owns the key range that starts with `<partition>/<table>` and a NUL byte. Values
are the JSON the changelog holds. The database is a bounded-memory cache of the
changelog, not a second truth: a partition's range is wiped when it is assigned (its
tables are restored from the changelog next) and when it is released, and the whole
database is destroyed when the loop stops. So nothing is read that the changelog did not
commit, writes skip RocksDB's write-ahead log, and a process killed with its database
open leaves a folder that the next process on the host removes (its pid is gone).
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
import structlog
from rocksdict import BlockBasedOptions, Cache, Options, Rdict, WriteBatch, WriteOptions

from streams.runtime.state import Backend, MemoryBackend, Tables
from tributary.pids import alive
from tributary.settings import Settings

log = structlog.get_logger(__name__)

MiB = 1 << 20
_opened = itertools.count(1)  # this process's databases, for unique folder names


class RocksStore:
    """One table of one partition: the keys under `prefix` in the loop's database."""

    def __init__(self, db: Rdict, prefix: bytes) -> None:
        self._db = db
        self._prefix = prefix

    def get(self, key: str) -> Any:
        raw = self._db.get(self._prefix + key.encode())
        return None if raw is None else orjson.loads(raw)

    def items(self) -> Iterator[tuple[str, Any]]:
        start = len(self._prefix)
        for key, raw in self._db.items(from_key=self._prefix):
            assert isinstance(key, bytes)  # raw mode
            if not key.startswith(self._prefix):
                return
            yield key[start:].decode(), orjson.loads(raw)

    def write(self, changes: Iterable[tuple[str, Any]]) -> None:
        batch = WriteBatch(raw_mode=True)
        for key, value in changes:
            name = self._prefix + key.encode()
            if value is None:
                batch.delete(name)
            else:
                batch.put(name, orjson.dumps(value))
        self._db.write(batch)


class RocksBackend:
    """The tables of the partitions one loop owns, in one RocksDB database."""

    def __init__(self, root: Path, name: str, memory_mib: int = 64) -> None:
        root.mkdir(parents=True, exist_ok=True)
        _remove_orphans(root, name)
        self.path = root / f"{name}-{os.getpid()}.{next(_opened)}"
        self._db = Rdict(str(self.path), _options(memory_mib))
        no_wal = WriteOptions()
        # The changelog is the log: a crash wipes this anyway. (A property at run time; the
        # package's stubs call it a method.)
        no_wal.disable_wal = True  # type: ignore[method-assign,assignment]
        self._db.set_write_options(no_wal)

    def open(self, partition: int, names: tuple[str, ...]) -> Tables:
        self.release(partition)
        return Tables(names, {n: RocksStore(self._db, _prefix(partition, n)) for n in names})

    def release(self, partition: int) -> None:
        start = f"{partition}/".encode()
        self._db.delete_range(start, f"{partition}0".encode())  # '0' follows '/'

    def close(self) -> None:
        self._db.close()
        Rdict.destroy(str(self.path))
        shutil.rmtree(self.path, ignore_errors=True)


def open_backend(settings: Settings, name: str) -> Backend:
    """The state backend the settings choose, for the loop called `name`."""
    if settings.state_backend == "memory":
        return MemoryBackend()
    return RocksBackend(settings.state_path, name, settings.state_memory_mib)


def _prefix(partition: int, table: str) -> bytes:
    return f"{partition}/{table}\0".encode()


def _options(memory_mib: int) -> Options:
    """Memory bounded by `memory_mib`: half for the block cache (reads), half for two
    write buffers (writes; a full one is flushed to disk)."""
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    options.set_write_buffer_size(max(1, memory_mib // 4) * MiB)
    options.set_max_write_buffer_number(2)
    table = BlockBasedOptions()
    table.set_block_cache(Cache(max(1, memory_mib // 2) * MiB))
    table.set_cache_index_and_filter_blocks(True)
    options.set_block_based_table_factory(table)
    return options


def _remove_orphans(root: Path, name: str) -> None:
    """Databases of this loop left by processes that are gone (killed with it open)."""
    for path in root.glob(f"{name}-*.*"):
        pid = owner(path, name)
        if pid is not None and not alive(pid):
            log.info("removing a dead process's state", path=str(path))
            shutil.rmtree(path, ignore_errors=True)


def owner(path: Path, name: str) -> int | None:
    """The pid of the process whose database of loop `name` is at `path`, if it is one."""
    pid, _, n = path.name.removeprefix(f"{name}-").partition(".")
    return int(pid) if pid.isdigit() and n.isdigit() else None
