"""What the command agent makes of the engine's reports about containers (pure).

The engine watcher reports a container that ended without a stop (`container.gone`);
each reconcile reports every container of a user it found on the engine
(`containers.observed`). The command agent holds each user's containers (`UserState`),
so it decides, in the user's order with the starts and stops that changed them:
- a held container that ended: its slot is released, `container.exited` with the reason;
- a container the engine runs that no record holds (an orphan: a start that was given up
  on, a record released while the engine kept it) is stopped, after a grace;
- a held running container the engine no longer has is `exited`, reason `vanished`;
- a running container past its lifetime, or idle past its limit, is stopped.
A container being stopped is left to its stop, which reports it.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.jobs import ContainersObserved, ExitReason, StopReason
from streams.jobs.admission import UserState

KILLED_EXIT_CODES = (137, 143)  # SIGKILL, SIGTERM: someone outside stopped it


@dataclass(frozen=True)
class Exited:
    container_id: str
    reason: ExitReason
    exit_code: int | None = None


@dataclass(frozen=True)
class Stop:
    container_id: str
    reason: StopReason


def exit_reason(exit_code: int | None, oom_killed: bool) -> ExitReason:
    if oom_killed:
        return "oom"
    if exit_code in KILLED_EXIT_CODES:
        return "killed"
    return "exited"


def gone(state: UserState, container_id: str) -> bool:
    """The container ended unasked: release its slot (True) unless it is not held or a stop
    of it is under way (that stop reports it)."""
    held = state.containers.get(container_id)
    if held is None or held == "stopping":
        return False
    del state.containers[container_id]
    state.running_since.pop(container_id, None)
    return True


def reconcile(state: UserState, observed: ContainersObserved, grace_ms: int) -> list[Exited | Stop]:
    """The engine's view of one user's containers against the record."""
    now = observed.at_ms
    on_engine = {c.container_id for c in observed.containers}
    actions: list[Exited | Stop] = []
    for c in observed.containers:
        held = state.containers.get(c.container_id)
        if held is None:
            if now - c.created_ms >= grace_ms:
                actions.append(Stop(c.container_id, "orphan"))
        elif not c.running:
            if gone(state, c.container_id):
                why = exit_reason(c.exit_code, c.oom_killed)
                actions.append(Exited(c.container_id, why, c.exit_code))
        elif held == "running":
            reason: StopReason | None = None
            if c.max_lifetime_s and now - c.created_ms >= c.max_lifetime_s * 1000:
                reason = "lifetime"
            elif c.idle_timeout_s and c.idle_ms >= c.idle_timeout_s * 1000:
                reason = "idle"
            if reason is not None:
                state.containers[c.container_id] = "stopping"
                actions.append(Stop(c.container_id, reason))
    for container_id, held in list(state.containers.items()):
        since = state.running_since.get(container_id, now)
        if held == "running" and container_id not in on_engine and now - since >= grace_ms:
            gone(state, container_id)
            actions.append(Exited(container_id, "vanished"))
    return actions
