"""The end-to-end demo: events in over HTTP, out of ClickHouse after Kafka and Faust."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from schemas.push import EventMessage
from tributary import admin
from tributary.client import PushClient
from tributary.settings import Settings


async def api_keys(settings: Settings, users: list[str]) -> dict[str, str]:
    """A fresh API key per user (what `tributary apikey create` does)."""
    from gateway.auth import create_api_key
    from tributary import redis_client

    client = redis_client.connect(settings)
    try:
        return {user: await create_api_key(client, settings.namespace, user) for user in users}
    finally:
        await client.aclose()


async def send_events(
    settings: Settings, run: str, events: int, users: int
) -> tuple[float, int, dict[str, str]]:
    """POST `events` events spread over `users` users, each user's in order, as a polite
    client: on 429 it waits `retry_after_ms` and retries.

    Returns (seconds, 429s seen, API key per user)."""
    names = [f"demo-{run}-u{i}" for i in range(users)]
    keys = await api_keys(settings, names) if settings.auth_enabled else {}
    per_user = [events // users + (1 if i < events % users else 0) for i in range(users)]
    limits = httpx.Limits(max_connections=users, max_keepalive_connections=users)
    throttled = 0
    async with httpx.AsyncClient(
        base_url=settings.gateway_url, timeout=30, limits=limits
    ) as client:

        async def one_user(name: str, count: int) -> None:
            nonlocal throttled
            auth = {"x-api-key": keys[name]} if keys else {}
            n = 0
            while n < count:
                body = {"source": f"demo/{run}", "type": "demo.click", "data": {"n": n}}
                if not keys:
                    body["subject"] = name
                response = await client.post("/v1/events", json=body, headers=auth)
                if response.status_code == 429:
                    throttled += 1
                    await asyncio.sleep(response.json()["retry_after_ms"] / 1000)
                    continue
                if response.status_code != 202:
                    raise RuntimeError(f"gateway answered {response.status_code}: {response.text}")
                n += 1

        started = time.perf_counter()
        await asyncio.gather(*(one_user(u, c) for u, c in zip(names, per_user, strict=True)))
        return time.perf_counter() - started, throttled, keys


async def read_push(
    settings: Settings, user: str, key: str | None, since: int, count: int, timeout_s: float = 30
) -> list[EventMessage]:
    """The next `count` of `user`'s events after seq `since`, through `tributary.client`."""
    client = PushClient(
        settings.gateway_url, api_key=key, subject=None if key else user, since=since
    )
    messages: list[EventMessage] = []
    async with asyncio.timeout(timeout_s), contextlib.aclosing(client.events()) as events:
        async for event in events:
            messages.append(event)
            if len(messages) == count:
                break
    return messages


def post_query(settings: Settings, sql: str) -> httpx.Response:
    """`POST /query` to the projector with the admin key (`tributary query`, the demo)."""
    return httpx.post(
        f"{settings.projector_url}/query",
        json={"sql": sql},
        headers=admin.client_headers(settings),
        timeout=settings.query_max_execution_s + 30,
    )


def query(settings: Settings, sql: str) -> list[list[Any]]:
    """The rows of `sql`, or RuntimeError with the projector's answer."""
    response = post_query(settings, sql)
    body = response.json()
    if response.status_code != 200:
        raise RuntimeError(f"query failed: {body}")
    return body["rows"]  # type: ignore[no-any-return]


def run(settings: Settings, events: int, users: int, echo: Callable[[str], None] = print) -> None:
    run_id = uuid.uuid4().hex[:8]
    db = settings.clickhouse_database
    echo(f"sending {events} events for {users} users to {settings.gateway_url} (run {run_id})")
    seconds, throttled, keys = asyncio.run(send_events(settings, run_id, events, users))
    echo(
        f"accepted {events} events in {seconds:.2f}s ({events / seconds:.0f} events/s over HTTP;"
        f" {throttled} answers were 429 and retried after Retry-After)"
    )
    where = f"user_id LIKE 'demo-{run_id}-%'"
    deadline = time.monotonic() + 120
    started = time.monotonic()
    count = 0
    while time.monotonic() < deadline:
        count = query(settings, f"SELECT count() FROM {db}.events_counted WHERE {where}")[0][0]
        if count >= events:
            break
        time.sleep(0.25)
    else:
        raise RuntimeError(f"only {count} of {events} events reached ClickHouse in 120s")
    echo(f"all {count} events in ClickHouse {time.monotonic() - started:.2f}s after the last 202")
    rows = query(
        settings,
        f"""
        SELECT user_id, count() AS events, min(seq), max(seq),
               arraySort(x -> x.1, groupArray((seq, JSONExtractInt(data, 'data', 'n'))))
                 AS by_seq
        FROM {db}.events_counted WHERE {where} GROUP BY user_id ORDER BY user_id""",
    )
    echo(f"{'user':<24}{'events':>8}{'seq':>12}  in order")
    for user, n, lo, hi, pairs in rows:
        in_order = [p[1] for p in pairs] == list(range(len(pairs)))
        echo(f"{user:<24}{n:>8}{f'{lo}..{hi}':>12}  {'yes' if in_order else 'NO'}")
    user = f"demo-{run_id}-u0"
    expected = events // users + (1 if events % users else 0)
    pushed = asyncio.run(read_push(settings, user, keys.get(user), 0, expected))
    seqs = [m.seq for m in pushed]
    echo(
        f"WebSocket /v1/ws as {user}: {len(pushed)} events pushed, seq {seqs[0]}..{seqs[-1]}, "
        f"{'in order' if seqs == list(range(1, len(seqs) + 1)) else 'OUT OF ORDER'}"
    )
