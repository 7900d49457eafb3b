"""What the dashboard's pages show, from what its sources read (pure: no I/O here).

Dead letters filtered by reason and by whether this dashboard already retried them; lag per
group and partition from committed and end offsets; a job's timeline from its steps in
ClickHouse; chart series from per-minute rows.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from schemas.dead_letters import Letter
from schemas.envelope import USER_ID_PATTERN
from schemas.jobs import CONTAINER_ID_PATTERN

# Job ids and container ids share one shape (`schemas.jobs.CONTAINER_ID_PATTERN`).
_USER = re.compile(USER_ID_PATTERN)
_ID = re.compile(CONTAINER_ID_PATTERN)
# The letters one page lists, newest first; a filter narrows them before the cut.
MAX_LETTERS_SHOWN = 500


def valid_user(user_id: str) -> bool:
    """A user id as the gateway accepts them (no quote or backslash: safe in SQL text)."""
    return bool(_USER.match(user_id))


def valid_id(job_or_container_id: str) -> bool:
    return bool(_ID.match(job_or_container_id))


@dataclass(frozen=True)
class LetterList:
    letters: list[Letter]  # what the page shows, newest first
    matching: int  # how many match the filter (the page may show fewer)
    reasons: list[tuple[str, int]]  # every reason among the letters not retried, with counts
    retried: int  # letters hidden because they were retried


def letter_list(
    letters: Sequence[Letter], retried: set[str], reason: str | None, show_retried: bool
) -> LetterList:
    """The letters to list: by `reason` if given, without the retried ones unless asked."""
    pending = [d for d in letters if d.position not in retried]
    pool = list(letters) if show_retried else pending
    matching = [d for d in pool if reason is None or d.reason == reason]
    matching.sort(key=lambda d: (d.timestamp_ms, d.partition, d.offset), reverse=True)
    counts = Counter(d.reason for d in pending)
    return LetterList(
        letters=matching[:MAX_LETTERS_SHOWN],
        matching=len(matching),
        reasons=sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])),
        retried=len(letters) - len(pending),
    )


def find_letter(letters: Iterable[Letter], position: str) -> Letter | None:
    return next((d for d in letters if d.position == position), None)


@dataclass(frozen=True)
class LagRow:
    group: str
    topic: str
    partition: int
    committed: int | None  # None: the group never committed on this partition
    end: int

    @property
    def lag(self) -> int:
        """Records the group has yet to process here; all of them when it never committed.
        A topic written in transactions ends with a commit marker, so a group that is
        caught up on one can show 1."""
        return max(0, self.end - (self.committed or 0))


def lag_rows(
    groups: Mapping[str, Sequence[str]],
    committed: Mapping[str, Mapping[tuple[str, int], int]],
    ends: Mapping[tuple[str, int], int],
) -> list[LagRow]:
    """One row per (group, topic, partition) of the topics each group reads: `committed`
    holds each group's committed offsets, `ends` each partition's end offset."""
    rows = []
    for group, topics in groups.items():
        own = committed.get(group, {})
        for (topic, partition), end in sorted(ends.items()):
            if topic in topics:
                rows.append(LagRow(group, topic, partition, own.get((topic, partition)), end))
    return rows


def lag_by_group(rows: Iterable[LagRow]) -> dict[str, int]:
    total: dict[str, int] = {}
    for row in rows:
        total[row.group] = total.get(row.group, 0) + row.lag
    return total


@dataclass(frozen=True)
class Step:
    """One step of a job, as `jobs_events` holds it."""

    time: str
    state: str
    attempt: int
    latency_ms: int | None
    reason: str | None


def timeline(rows: Iterable[Sequence[Any]]) -> list[Step]:
    """A job's steps in time order from rows `(time, state, attempt, latency_ms, reason)`
    (steps of the same time keep the rows' order: the log's); a step delivered twice (the
    projection is exactly once, a replay is not) shows once."""
    seen: set[tuple[str, str, int]] = set()
    steps = []
    for time, state, attempt, latency_ms, reason in sorted(rows, key=lambda r: str(r[0])):
        key = (str(time), str(state), int(attempt))
        if key in seen:
            continue
        seen.add(key)
        steps.append(
            Step(
                str(time),
                str(state),
                int(attempt),
                int(latency_ms) if latency_ms is not None else None,
                str(reason) if reason else None,
            )
        )
    return steps


@dataclass(frozen=True)
class Series:
    """A chart: minute labels and one list of values per line, aligned."""

    labels: list[str]
    lines: dict[str, list[float | None]]


def series(rows: Iterable[Sequence[Any]], names: Sequence[str]) -> Series:
    """Rows `(minute, value, value, ...)` as a chart with one line per name in `names`;
    minutes in order, a minute without a row is absent (not drawn as zero)."""
    ordered = sorted(rows, key=lambda r: str(r[0]))
    lines: dict[str, list[float | None]] = {name: [] for name in names}
    for row in ordered:
        for name, value in zip(names, row[1:], strict=True):
            lines[name].append(float(value) if value is not None else None)
    return Series([str(r[0]) for r in ordered], lines)


def quantile_rows(rows: Iterable[Sequence[Any]]) -> list[tuple[Any, float, float]]:
    """`(minute, [p50, p90, p99])` rows from ClickHouse's `quantilesMerge` as
    `(minute, p50, p99)`."""
    return [(minute, float(qs[0]), float(qs[-1])) for minute, qs in rows]
