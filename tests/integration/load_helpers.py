"""Users sending events over HTTP while processes are killed or stopped, and the check that
every accepted event is in ClickHouse once, in order (the cluster and drain tests)."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import httpx

from cli.demo import api_keys, query
from tributary.settings import Settings

USERS = 12
PAUSE_S = 0.05  # between a user's events: at most USERS / PAUSE_S events/s


@dataclass
class Load:
    """Users sending events through the balancer until `stop`; what the gateways answered."""

    settings: Settings
    prefix: str = "cl"  # user ids are <prefix>-<run>-u<n>
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    stop: threading.Event = field(default_factory=threading.Event)
    accepted: Counter[str] = field(default_factory=Counter)  # 202s per user
    refused: list[tuple[float, str]] = field(default_factory=list)  # (when, what) not 202
    thread: threading.Thread | None = None

    def users(self) -> list[str]:
        return [f"{self.prefix}-{self.run}-u{i}" for i in range(USERS)]

    def start(self) -> Load:
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self.thread.start()
        return self

    def finish(self) -> None:
        self.stop.set()
        assert self.thread is not None
        self.thread.join(timeout=60)

    async def _run(self) -> None:
        keys = await api_keys(self.settings, self.users())
        async with httpx.AsyncClient(base_url=self.settings.gateway_url, timeout=10) as client:
            await asyncio.gather(*(self._user(client, u, keys[u]) for u in self.users()))

    async def _user(self, client: httpx.AsyncClient, user: str, key: str) -> None:
        n = 0
        while not self.stop.is_set():
            body = {"id": f"{user}-{n}", "source": "cluster", "type": "t.n", "data": {"n": n}}
            try:
                response = await client.post("/v1/events", json=body, headers={"x-api-key": key})
                status = str(response.status_code)
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            if status == "202":
                self.accepted[user] += 1
                n += 1
                await asyncio.sleep(PAUSE_S)
            else:
                self.refused.append((time.monotonic(), status))
                await asyncio.sleep(0.1)  # the same event again, same id


def check_exactly_once_in_order(settings: Settings, load: Load, timeout_s: float = 180) -> None:
    """Every 202 in `events_counted` once; per user, seq 1..N in the order sent."""
    db, where = settings.clickhouse_database, f"user_id LIKE '{load.prefix}-{load.run}-%'"
    total = sum(load.accepted.values())
    deadline = time.monotonic() + timeout_s
    while query(settings, f"SELECT count() FROM {db}.events_counted WHERE {where}")[0][0] < total:
        assert time.monotonic() < deadline, "not every accepted event reached ClickHouse"
        time.sleep(0.5)
    time.sleep(2)  # a duplicate would be a straggler
    rows = query(
        settings,
        f"""SELECT user_id, count(), uniqExact(event_id), min(seq), max(seq),
               arrayMap(p -> p.2, arraySort(p -> p.1,
                   groupArray((seq, JSONExtractInt(data, 'data', 'n'))))) AS n_by_seq
            FROM {db}.events_counted WHERE {where} GROUP BY user_id ORDER BY user_id""",
    )
    assert {r[0] for r in rows} == set(load.users())
    for user, n, unique, lo, hi, n_by_seq in rows:
        sent = load.accepted[user]
        assert (n, unique) == (sent, sent), f"{user}: {n} rows, {unique} ids for {sent} 202s"
        assert (lo, hi) == (1, sent), f"{user}: seq {lo}..{hi} for {sent} events"
        assert n_by_seq == list(range(sent)), f"{user}: not in the order sent"
