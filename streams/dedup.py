"""Event-id dedup tables: an id seen within the TTL (of event time) has no second effect.

Tumbling windows of the TTL, checked current and previous, so an id is remembered for
between one and two TTLs of the records' own timestamps (a replay decides the same)
and then expires. Keys are `user/id`: ids are client-chosen, and one user's must not
shadow another's.
"""

from __future__ import annotations

from typing import Any

import faust


def seen_table(app: faust.App, name: str, partitions: int, ttl_s: int) -> Any:
    return (
        app.Table(name, default=int, partitions=partitions, key_type=str)
        .tumbling(ttl_s, expires=2 * ttl_s)
        .relative_to_stream()
    )


def already_seen(seen: Any, key: str, ttl_s: int) -> bool:
    return bool(seen[key].current() or seen[key].delta(ttl_s))
