"""What the transactional loop runs: a processor's decisions, and the effect step of one
that has side effects. The agents implement these (structurally; none imports this)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from streams.runtime import state
from streams.runtime.outputs import Effect, Output, Record


class Processor(Protocol):
    name: str  # the loop's consumer group and transactional ids derive from it
    source: str  # the input topic
    tables: tuple[str, ...]  # its tables (changelog `<app id>-<table>-changelog`)
    dlq: str  # where a record it cannot handle goes, with the reason

    def process(self, record: Record, tables: state.Tables) -> Sequence[Output | Effect]:
        """The outputs for one record; reads and writes `tables` (no I/O)."""
        ...

    def tidy(self, tables: state.Tables, now_ms: int) -> None:
        """Drop what has expired by event time `now_ms` (called once per batch)."""
        ...


class EffectStep(Protocol):
    """Runs a processor's side effects; their results come back as input records."""

    def resume(self, partition: int, tables: state.Tables) -> list[Effect]:
        """What a taken-over partition's tables say is still to run (pure)."""
        ...

    async def submit(self, effects: list[Effect]) -> None:
        """Start them; waits while the step is at its concurrency (backpressure)."""
        ...
