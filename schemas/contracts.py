"""The contract registry: every CloudEvents type Tributary writes, its `data` model and version.

A record's `dataschema` attribute names its schema as `urn:tributary:schema:<type>:<version>`.
The same name is a path in the repository (`schemas/published/<type>/<version>.json`, written
by `tributary schemas export`) and on the gateway (`GET /v1/schemas/<type>/<version>`). A URN
rather than a URL: the name stays the same on every deployment and in topics replayed years
later; the gateway and the repository both resolve it.

A type whose `data` changes incompatibly gets a new version. Its older editions stay listed
with the date until which writers produce them side by side (`schemas.editions`), so a
subscriber has that long to move.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pydantic import BaseModel

from schemas.events import CLIENT_EVENT, COUNTED_TYPE, ClientEvent, CountedData
from schemas.headers import CE_DATASCHEMA
from schemas.jobs import (
    COMMAND_REJECTED,
    CONTAINER_DISPLAY_READY,
    CONTAINER_EVENT_TYPES,
    CONTAINER_GONE,
    CONTAINER_START,
    CONTAINER_STOP,
    CONTAINERS_OBSERVED,
    DESKTOP_SESSION,
    INFERENCE_REQUESTED,
    JOB_DUE,
    JOB_FINISHED,
    JOB_RESULT,
    JOB_STEP_TYPES,
    JOB_WORK,
    AttemptResult,
    CommandRejected,
    ContainerEvent,
    ContainerGone,
    ContainerIn,
    ContainersObserved,
    ContainerStop,
    DesktopSession,
    DisplayReady,
    InferenceIn,
    Job,
    JobFinished,
    JobStep,
)

SCHEMA_URN = "urn:tributary:schema"

Downgrade = Callable[[dict[str, Any]], dict[str, Any]]


SIDE_BY_SIDE_DAYS = 90  # the least time an older version is still written (subscribers.md)


@dataclass(frozen=True)
class Edition:
    """An older version of a type, still written beside the current one from `since` (the
    day its successor shipped) until `until`, at least `SIDE_BY_SIDE_DAYS` later."""

    version: int
    model: builtins.type[BaseModel]
    since: date
    until: date
    downgrade: Downgrade  # the current version's data -> this version's

    def __post_init__(self) -> None:
        if (self.until - self.since).days < SIDE_BY_SIDE_DAYS:
            raise ValueError(
                f"version {self.version} must be written for {SIDE_BY_SIDE_DAYS} days after"
                f" its successor ships: until {self.until} is too early for {self.since}"
            )


@dataclass(frozen=True)
class Contract:
    type: str
    model: builtins.type[BaseModel]
    description: str
    version: int = 1
    older: tuple[Edition, ...] = field(default=())

    def models(self) -> dict[int, builtins.type[BaseModel]]:
        """Every version still published: version -> model."""
        return {**{e.version: e.model for e in self.older}, self.version: self.model}


# Container limits and stop reasons (schemas/jobs_v1.py): version 2 of three types.
BUMPED = date(2026, 12, 3)
BUMPED_UNTIL = date(2027, 3, 3)


def _contracts() -> tuple[Contract, ...]:
    from schemas import jobs_v1

    steps = tuple(
        Contract(t, JobStep, f"A job step: {t.removeprefix('job.')}.") for t in JOB_STEP_TYPES
    )
    containers = tuple(
        Contract(t, ContainerEvent, f"A container is {t.removeprefix('container.')}.")
        for t in CONTAINER_EVENT_TYPES
    )
    return (
        Contract(CLIENT_EVENT, ClientEvent, "A client's event (any `type` the client chose)."),
        Contract(COUNTED_TYPE, CountedData, "A client's event with the user's sequence number."),
        Contract(
            CONTAINER_START,
            ContainerIn,
            "A request to start a container.",
            version=2,
            older=(
                Edition(1, jobs_v1.ContainerIn, BUMPED, BUMPED_UNTIL, jobs_v1.container_start_v1),
            ),
        ),
        Contract(CONTAINER_STOP, ContainerStop, "A request to stop a container."),
        Contract(INFERENCE_REQUESTED, InferenceIn, "A request to embed texts."),
        Contract(JOB_FINISHED, JobFinished, "An executor's report that a job is over."),
        Contract(
            JOB_WORK,
            Job,
            "An accepted job, for an executor.",
            version=2,
            older=(Edition(1, jobs_v1.Job, BUMPED, BUMPED_UNTIL, jobs_v1.job_v1),),
        ),
        Contract(
            JOB_DUE,
            Job,
            "A debounced job whose delay is over.",
            version=2,
            older=(Edition(1, jobs_v1.Job, BUMPED, BUMPED_UNTIL, jobs_v1.job_v1),),
        ),
        Contract(JOB_RESULT, AttemptResult, "How one attempt's side effect ended."),
        Contract(CONTAINER_GONE, ContainerGone, "The engine says a container ended unasked."),
        Contract(CONTAINERS_OBSERVED, ContainersObserved, "A user's containers on the engine."),
        *steps,
        *containers,
        Contract(COMMAND_REJECTED, CommandRejected, "A refused command, and the rule."),
        Contract(CONTAINER_DISPLAY_READY, DisplayReady, "A desktop's screen can be viewed."),
        Contract(DESKTOP_SESSION, DesktopSession, "One viewer's session on a desktop."),
    )


CONTRACTS: tuple[Contract, ...] = _contracts()
_BY_TYPE = {c.type: c for c in CONTRACTS}


def contract(event_type: str) -> Contract:
    """The contract of `event_type`; raises KeyError naming it."""
    try:
        return _BY_TYPE[event_type]
    except KeyError:
        raise KeyError(f"no contract for type {event_type!r}") from None


def known(event_type: str) -> bool:
    return event_type in _BY_TYPE


def dataschema(event_type: str, version: int | None = None) -> str:
    """The `dataschema` of `event_type` (its current version unless `version` is given)."""
    return f"{SCHEMA_URN}:{event_type}:{version or contract(event_type).version}"


CLIENT_EVENT_SCHEMA = dataschema(CLIENT_EVENT)


def parse_dataschema(uri: str) -> tuple[str, int] | None:
    """(type, version) of a `dataschema` we wrote, or None."""
    prefix = SCHEMA_URN + ":"
    if not uri.startswith(prefix):
        return None
    event_type, _, version = uri.removeprefix(prefix).rpartition(":")
    if not event_type or not version.isdigit():
        return None
    return event_type, int(version)


def superseded(headers: Sequence[tuple[str, bytes]] | None) -> bool:
    """A record that is a side-by-side copy in an older version (skip it: the current one is
    beside it); from its Kafka headers."""
    for name, value in headers or ():
        if name == CE_DATASCHEMA and value is not None:
            return not is_current(value.decode(errors="replace"))
    return False


def is_current(uri: str | None) -> bool:
    """False for a side-by-side copy in an older version; readers of ours skip those."""
    if uri is None:
        return True
    named = parse_dataschema(uri)
    if named is None or not known(named[0]):
        return True
    return named[1] == contract(named[0]).version
