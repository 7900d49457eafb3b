"""What a WebSocket resume can promise: pure rules, no I/O (the route does the reads).

Channel `events` (entry ids are `<seq>-0`): Redis serves every seq from its stream's first
entry on; anything between the client's `since` and that first entry is asked of
ClickHouse. The answer is complete (`recovered`) when the seqs after `since` follow with
no hole; otherwise the client is told the first seq it will get (`earliest`) and gets an
unbroken run from there.

Channels `jobs` and `container` (entry ids are Redis's own): complete when nothing after
the client's cursor was trimmed (the stream's highest deleted id is not above it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

EntryId = tuple[int, int]


def events_gap(since: int, exists: bool, first_seq: int | None) -> tuple[int, int | None] | None:
    """The seqs Redis cannot serve after `since`: (after, before), both exclusive, `before`
    None for "all of them" (no stream held); None when Redis holds everything after `since`."""
    if not exists or first_seq is None:
        return (since, None)
    if first_seq <= since + 1:
        return None
    return (since, first_seq)


@dataclass(frozen=True)
class Verdict:
    recovered: bool
    earliest: int | None  # the first seq the client gets, where not since + 1
    send: list[tuple[int, bytes]] = field(default_factory=list)  # filled messages to send


def fill_verdict(since: int, before: int | None, filled: list[tuple[int, bytes]] | None) -> Verdict:
    """The outcome of a gap (`since`, `before`) and what ClickHouse returned for it, in seq
    order (None: ClickHouse could not be asked). Only a run of seqs that ends where Redis
    begins is sent: a hole inside the fill, or between it and Redis, is never papered over."""
    if before is not None and before <= since + 1:
        return Verdict(recovered=True, earliest=None)  # no gap at all
    if filled is None:
        return Verdict(recovered=False, earliest=before)
    run: list[tuple[int, bytes]] = []
    for seq, message in reversed(filled):
        if seq <= since or (before is not None and seq >= before):
            continue
        # The newest must touch what Redis holds (when it holds any); each next, the last.
        follows = seq == run[-1][0] - 1 if run else before is None or seq == before - 1
        if not follows:
            break
        run.append((seq, message))
    run.reverse()
    if not run:
        if before is None:
            return Verdict(recovered=True, earliest=None)  # nothing after `since` anywhere
        return Verdict(recovered=False, earliest=before)
    earliest = run[0][0]
    return Verdict(recovered=earliest == since + 1, earliest=earliest, send=run)


def cursor_recovered(cursor: EntryId, exists: bool, max_deleted: EntryId) -> bool:
    """Whether every entry after `cursor` is still in the stream."""
    if not exists:
        return cursor == (0, 0)  # a client that saw entries of a stream now gone lost the rest
    return cursor >= max_deleted
