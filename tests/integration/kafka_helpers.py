"""Producing test events straight to a topic (no gateway), fast."""

from __future__ import annotations

from schemas.envelope import CloudEvent
from tributary.loadgen import produce_all


async def produce_events(bootstrap: str, topic: str, count: int, users: int, run: str) -> None:
    """`count` valid CloudEvents for users `<run>-u<i>`, data {"n": per-user index}."""
    events = (
        CloudEvent(
            source=f"tests/{run}",
            type="test.event",
            subject=f"{run}-u{i % users}",
            data={"n": i // users},
        )
        for i in range(count)
    )
    await produce_all(
        bootstrap,
        topic,
        events,
        window=5000,
        acks="all",
        enable_idempotence=True,
        linger_ms=20,
        max_batch_size=256 * 1024,
    )
