"""A user's pushed events as ClickHouse holds them, for a WebSocket resume older than Redis.

`events_counted` has every counted event the push stream had (the same `counted.*`
records, projected exactly once), by user and seq. The gateway asks here (`GET /history/
events`, admin only) when a client resumes from a seq its Redis stream no longer holds; the
messages are built as the push projector builds them (`schemas.push.push_payload`), with
`time` at ClickHouse's millisecond precision.

One read-only session of its own (the analysts' user and limits) on a thread of its own,
one query at a time; a request while one runs is refused (`Busy`: the route answers 503 and
the gateway's resume says `recovered: false`), so a reconnect storm queues nowhere, and
neither an analyst's query nor the projector's inserts wait on it.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from projections.analyst_queries import connect_analyst
from schemas.events import CountedData
from schemas.push import push_payload
from tributary.settings import Settings

MAX_EVENTS = 100_000


class Busy(Exception):
    """A history read is running already."""


class History:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._client = connect_analyst(settings)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="history")

    async def read(self, user: str, after: int, before: int | None, limit: int) -> list[bytes]:
        """`events` on the history thread, or `Busy` at once while another read runs."""
        if not self._lock.acquire(blocking=False):
            raise Busy
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._thread, self.events, user, after, before, limit)
        finally:
            self._lock.release()

    def events(self, user: str, after: int, before: int | None, limit: int) -> list[bytes]:
        """The user's stored push messages with `after` < seq < `before`, in seq order; the
        last `limit` of them (the ones nearest what Redis still holds). Blocks."""
        db = self._settings.clickhouse_database
        upper = "AND seq < {before:UInt64}" if before is not None else ""
        sql = (
            f"SELECT seq, event_id, time, data FROM {db}.events_counted "
            f"WHERE user_id = {{user:String}} AND seq > {{after:UInt64}} {upper} "
            "ORDER BY seq DESC LIMIT 1 BY seq LIMIT {limit:UInt32}"
        )
        parameters: dict[str, object] = {"user": user, "after": after, "limit": limit}
        if before is not None:
            parameters["before"] = before
        rows = self._client.query(sql, parameters=parameters).result_rows
        out = []
        for _, event_id, time, data in reversed(rows):
            counted = CountedData.model_validate_json(data)
            out.append(push_payload(counted, str(event_id), _iso(time)))
        return out

    def close(self) -> None:
        self._thread.shutdown(wait=False)
        self._client.close()


def _iso(time: datetime) -> str:
    return (time if time.tzinfo else time.replace(tzinfo=UTC)).isoformat()
