"""Producing CloudEvents straight to a topic, pipelined: the load behind tests and benches."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from schemas.envelope import CloudEvent, to_kafka
from tributary import kafka_clients
from tributary.kafka_clients import started


async def produce_all(
    bootstrap: str,
    topic: str,
    events: Iterable[CloudEvent],
    *,
    window: int,
    **producer_options: Any,
) -> int:
    """Produce every event in binary mode, at most `window` awaiting their acks at once.

    Returns how many were produced; every one was acknowledged when it returns.
    """
    producer = kafka_clients.producer(bootstrap, **producer_options)
    produced = 0
    async with started(producer):
        pending = []
        for event in events:
            key, value, headers = to_kafka(event)
            pending.append(await producer.send(topic, value=value, key=key, headers=headers))
            produced += 1
            if len(pending) >= window:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        return produced
