"""Our topics as Faust sees them: raw bytes in and out (the envelope codec is ours)."""

from __future__ import annotations

from typing import Any

import faust

from schemas.editions import editions
from schemas.envelope import CloudEvent, to_kafka
from schemas.topics import TopicSpec

RAW: dict[str, Any] = {
    "key_type": bytes,
    "value_type": bytes,
    "key_serializer": "raw",
    "value_serializer": "raw",
}


def raw_topic(app: faust.App, spec: TopicSpec, namespace: str) -> faust.TopicT:
    return app.topic(spec.physical(namespace), **RAW)


async def send_event(
    topic: faust.TopicT, event: CloudEvent, extra: dict[str, str] | None = None
) -> None:
    """`event` in binary content mode, keyed by its user (one record per edition of its type
    still produced: `schemas.editions`)."""
    for edition in editions(event):
        key, value, headers = to_kafka(edition, extra)
        await topic.send(key=key, value=value, headers=headers)
