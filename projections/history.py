"""A user's pushed events as ClickHouse holds them, for a WebSocket resume older than Redis.

`events_counted` has every counted event the push stream had (the same `counted.*`
records, projected exactly once), by user and seq. The gateway asks here (`GET /history/
events`, admin only) when a client resumes from a seq its Redis stream no longer holds; the
messages are built as the push projector builds them (`schemas.push.push_payload`), with
`time` at ClickHouse's millisecond precision.

One read-only session of its own (the analysts' user and limits), one query at a time, so
neither an analyst's query nor ingestion waits on it.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from projections.analyst_queries import connect_analyst
from schemas.events import CountedData
from schemas.push import push_payload
from tributary.settings import Settings

MAX_EVENTS = 100_000


class History:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._client = connect_analyst(settings)

    def events(self, user: str, after: int, before: int | None, limit: int) -> list[bytes]:
        """The user's stored push messages with `after` < seq < `before`, in seq order; the
        last `limit` of them (the ones nearest what Redis still holds). Blocks: call in a
        thread."""
        db = self._settings.clickhouse_database
        upper = "AND seq < {before:UInt64}" if before is not None else ""
        sql = (
            f"SELECT seq, event_id, time, data FROM {db}.events_counted "
            f"WHERE user_id = {{user:String}} AND seq > {{after:UInt64}} {upper} "
            "ORDER BY seq DESC LIMIT 1 BY seq LIMIT {limit:UInt32}"
        )
        parameters = {"user": user, "after": after, "before": before, "limit": limit}
        with self._lock:
            rows = self._client.query(sql, parameters=parameters).result_rows
        out = []
        for _, event_id, time, data in reversed(rows):
            counted = CountedData.model_validate_json(data)
            out.append(push_payload(counted, str(event_id), _iso(time)))
        return out

    def close(self) -> None:
        self._client.close()


def _iso(time: datetime) -> str:
    return (time if time.tzinfo else time.replace(tzinfo=UTC)).isoformat()
