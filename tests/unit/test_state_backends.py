"""A partition's tables behave the same on both state backends (memory and RocksDB):
pending writes, commit and abort, restore from changelog records, and what a partition
owns on assignment and release."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.runtime import state, stores

TTL_MS = 60_000


@pytest.fixture(params=["memory", "rocksdb"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[state.Backend]:
    chosen: state.Backend = (
        state.MemoryBackend()
        if request.param == "memory"
        else stores.RocksBackend(tmp_path, "agent", memory_mib=8)
    )
    yield chosen
    chosen.close()


def test_writes_are_pending_until_applied_and_gone_when_discarded(
    backend: state.Backend,
) -> None:
    t = backend.open(0, ("a",))
    t["a"]["k"] = 1
    assert t["a"].get("k") == 1  # the batch sees its own write
    assert list(t.changes()) == [("a", "k", 1)]
    t.discard()
    assert t["a"].get("k") is None and list(t.changes()) == []
    t["a"]["k"] = 2
    t.apply()
    del t["a"]["k"]
    assert t["a"].get("k") is None and list(t.changes()) == [("a", "k", None)]
    assert t["a"].get("k", "default") == "default"
    t.discard()
    assert t["a"].get("k") == 2 and list(t["a"].items()) == [("k", 2)]
    del t["a"]["k"]
    t.apply()
    assert t["a"].get("k") is None and list(t["a"].items()) == []


def test_restore_applies_changelog_records_in_order(backend: state.Backend) -> None:
    t = backend.open(3, ("a", "b"))
    t["a"].restore([("k1", {"n": 1}), ("k2", [1, 2]), ("k1", {"n": 2}), ("k2", None)])
    t["b"].restore([("k1", "other table")])
    assert t["a"].get("k1") == {"n": 2} and t["a"].get("k2") is None
    assert sorted(t["a"].items()) == [("k1", {"n": 2})]
    assert list(t["b"].items()) == [("k1", "other table")]


def test_partitions_are_apart_and_assignment_starts_empty(backend: state.Backend) -> None:
    """A partition's tables hold only its own keys; taking one over (again) starts from
    nothing, since its tables are restored from the changelog next; releasing one leaves
    the others."""
    one, ten = backend.open(1, ("a",)), backend.open(10, ("a",))
    one["a"].restore([("k", 1), ("j", 1)])
    ten["a"].restore([("k", 10)])
    assert sorted(one["a"].items()) == [("j", 1), ("k", 1)]
    assert list(ten["a"].items()) == [("k", 10)]
    backend.release(1)
    assert ten["a"].get("k") == 10
    again = backend.open(10, ("a",))
    assert again["a"].get("k") is None and list(again["a"].items()) == []


def test_dedup_is_in_event_time_and_expires_after_two_ttls(backend: state.Backend) -> None:
    seen = backend.open(0, ("seen",))["seen"]
    seen["u/e"] = 1_000
    assert state.seen_before(seen, "u/e", 1_000 + TTL_MS - 1, TTL_MS)
    assert not state.seen_before(seen, "u/e", 1_000 + TTL_MS, TTL_MS)
    seen.apply()
    state.forget_expired(seen, 1_000 + 2 * TTL_MS, TTL_MS)
    assert seen.get("u/e") == 1_000  # not yet two TTLs old
    seen.apply()
    state.forget_expired(seen, 1_001 + 2 * TTL_MS + TTL_MS // 10, TTL_MS)
    assert seen.get("u/e") is None
    seen.apply()
    assert [k for k, _ in seen.items()] == ["~swept"]


def test_rocksdb_folders_of_dead_processes_are_removed_and_ours_on_close(
    tmp_path: Path,
) -> None:
    dead = tmp_path / "agent-999999999.1"  # no such pid
    dead.mkdir()
    other_agent = tmp_path / "other-999999999.1"
    other_agent.mkdir()
    live = tmp_path / f"agent-{os.getppid()}.1"  # a process that is running
    live.mkdir()
    backend = stores.RocksBackend(tmp_path, "agent", memory_mib=8)
    assert stores.owner(backend.path, "agent") == os.getpid() and backend.path.is_dir()
    assert not dead.exists() and other_agent.exists() and live.exists()
    # A second loop of the same group in this process gets a database of its own.
    second = stores.RocksBackend(tmp_path, "agent", memory_mib=8)
    second.open(0, ("a",))["a"].restore([("k", 2)])
    assert second.path != backend.path and backend.path.is_dir()
    assert backend.open(0, ("a",))["a"].get("k") is None
    backend.close()
    second.close()
    assert not backend.path.exists() and not second.path.exists()


def test_the_setting_chooses_the_backend(tmp_path: Path) -> None:
    from tributary.settings import Settings

    memory = stores.open_backend(Settings(state_backend="memory"), "agent")
    assert isinstance(memory, state.MemoryBackend)
    rocks = stores.open_backend(Settings(state_backend="rocksdb", state_dir=tmp_path), "agent")
    try:
        assert isinstance(rocks, stores.RocksBackend) and rocks.path.parent == tmp_path
    finally:
        rocks.close()


def test_outcomes_count_only_when_the_batch_commits(backend: state.Backend) -> None:
    """A batch that aborts and is processed again counts its records once."""
    t = backend.open(0, ("a",))
    t.count("counted")
    t.count("duplicate")
    t.discard()  # aborted
    t.count("counted")
    assert t.apply() == {"counted": 1}
    assert t.apply() == {}
