"""The command agent's authoritative limits, as pure functions of (state, command, event time).

Everything here depends only on the user's state and the record's timestamp, never on
the wall clock, so replaying the `commands` topic into a fresh app makes the same
decisions. The gateway's Redis limits are admission control (cheap, approximate under
failure); these are the rules of record.

Per user:
- request-rate windows (GCRA, the same math as the gateway's) over job-creating commands;
- at most `max_in_flight_jobs` inference jobs queued or running;
- at most `max_running_containers` containers starting or running.
Quota counts go down when the executor's `job.finished` / a stopped container comes
back on the same `commands` topic, which keeps the whole decision on one ordered log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tributary.limits import Window, decide


@dataclass(frozen=True)
class Quotas:
    windows: tuple[Window, ...]
    max_in_flight_jobs: int
    max_running_containers: int


@dataclass
class UserState:
    """What the command agent keeps per user (a RocksDB table value, as JSON)."""

    tats: list[int | None] = field(default_factory=list)
    in_flight: list[str] = field(default_factory=list)  # inference job ids
    containers: dict[str, str] = field(default_factory=dict)  # container id -> state
    debounced: dict[str, str] = field(default_factory=dict)  # debounce key -> latest job id
    running_since: dict[str, int] = field(default_factory=dict)  # container id -> ms

    def to_json(self) -> dict[str, Any]:
        return {
            "tats": self.tats,
            "in_flight": self.in_flight,
            "containers": self.containers,
            "debounced": self.debounced,
            "running_since": self.running_since,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any] | None) -> UserState:
        raw = raw or {}
        return cls(
            tats=list(raw.get("tats", [])),
            in_flight=list(raw.get("in_flight", [])),
            containers=dict(raw.get("containers", {})),
            debounced=dict(raw.get("debounced", {})),
            running_since=dict(raw.get("running_since", {})),
        )


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    reason: str | None = None
    retry_after_ms: int = 0


def _rate(state: UserState, quotas: Quotas, now_ms: int) -> Verdict:
    tats: list[int | None] = (
        state.tats if len(state.tats) == len(quotas.windows) else [None] * len(quotas.windows)
    )
    decision, new_tats = decide(tats, quotas.windows, now_ms)
    if not decision.allowed:
        return Verdict(False, "rate_limited", decision.retry_after_ms)
    state.tats = new_tats
    return Verdict(True)


def admit_inference(state: UserState, quotas: Quotas, job_id: str, now_ms: int) -> Verdict:
    """Accept (and record) an inference job, or say which rule refused it."""
    if job_id in state.in_flight:
        return Verdict(True)  # the same command again: already counted
    if len(state.in_flight) >= quotas.max_in_flight_jobs:
        return Verdict(False, "too_many_jobs_in_flight")
    verdict = _rate(state, quotas, now_ms)
    if verdict.accepted:
        state.in_flight.append(job_id)
    return verdict


def admit_container(state: UserState, quotas: Quotas, container_id: str, now_ms: int) -> Verdict:
    """Accept (and record) a container start, or say which rule refused it."""
    if container_id in state.containers:
        return Verdict(True)
    if len(state.containers) >= quotas.max_running_containers:
        return Verdict(False, "too_many_containers")
    verdict = _rate(state, quotas, now_ms)
    if verdict.accepted:
        state.containers[container_id] = "starting"
    return verdict


def stop_container(state: UserState, container_id: str) -> Verdict:
    """A stop is accepted for a container of this user that is not already gone."""
    if container_id not in state.containers:
        return Verdict(False, "no_such_container")
    state.containers[container_id] = "stopping"
    return Verdict(True)


def finished(
    state: UserState, job_id: str, container_id: str | None, outcome: str, at_ms: int = 0
) -> str | None:
    """The executor reports a job done: release what it held. Returns what became of the
    container it was about (`running`, `stopped`), or None when nothing did.

    A started container keeps its slot until it is stopped; one that failed to start,
    or was stopped, gives it back. A start that finishes while a stop of it is under way
    leaves it to the stop.
    """
    if job_id in state.in_flight:
        state.in_flight.remove(job_id)
    if container_id is None or container_id not in state.containers:
        return None
    if outcome == "running":
        if state.containers[container_id] != "starting":
            return None
        state.containers[container_id] = "running"
        state.running_since[container_id] = at_ms
        return "running"
    del state.containers[container_id]
    state.running_since.pop(container_id, None)
    return "stopped" if outcome == "stopped" else None


def debounce(state: UserState, key: str | None, job_id: str) -> str | None:
    """Record `job_id` as the latest for `key`; return the job it replaces, if any."""
    if key is None:
        return None
    replaced = state.debounced.get(key)
    state.debounced[key] = job_id
    return replaced if replaced != job_id else None


def is_latest(state: UserState, key: str | None, job_id: str) -> bool:
    """Whether a debounced job is still the latest of its key when its delay is over."""
    if key is None:
        return True
    if state.debounced.get(key) != job_id:
        return False
    del state.debounced[key]
    return True
