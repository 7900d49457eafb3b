"""`WS /v1/ws` as clients use it (issue #19): resume after a disconnect, resume past what
Redis holds (filled from ClickHouse, or said to be incomplete), a slow client, bad
parameters and credentials, another user's data, keepalive and a draining gateway.

Real processes (gateway, worker, projector on Kafka, Redis and chDB); the push streams
are trimmed with `XTRIM` as retention would, and a few cases write a stream directly (the
gateway's input) where the data must exist in Redis only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import pytest
import redis
import websockets

from cli.demo import api_keys, query
from infra.local import stack
from infra.local.process import free_port, wait_until
from projections.push_notices import notify
from schemas import keys
from schemas.events import CountedData
from schemas.push import STREAM_FIELD, push_payload
from tests.conftest import app_stack
from tributary import redis_client
from tributary.client import PushClient
from tributary.settings import Settings

pytestmark = pytest.mark.integration

BUFFER = 256 * 1024


@pytest.fixture(scope="module")
def push_apps(services: Settings) -> Iterator[Settings]:
    with app_stack(
        services,
        push_send_buffer_bytes=BUFFER,
        push_auth_timeout_s=1.0,
        push_ping_interval_s=1.0,
        push_ping_timeout_s=1.0,
    ) as settings:
        yield settings


def ws_url(settings: Settings) -> str:
    return settings.gateway_url.replace("http://", "ws://") + "/v1/ws"


def new_user(settings: Settings) -> tuple[str, str]:
    user = f"p{uuid.uuid4().hex[:8]}"
    return user, asyncio.run(api_keys(settings, [user]))[user]


def post(settings: Settings, key: str, first: int, count: int) -> None:
    """`count` events with `data.n` = first, first + 1, ... (one batch request)."""
    events = [
        {"source": "push", "type": "t.n", "data": {"n": n}} for n in range(first, first + count)
    ]
    response = httpx.post(
        f"{settings.gateway_url}/v1/events/batch",
        json={"events": events},
        headers={"x-api-key": key},
        timeout=30,
    )
    assert response.status_code == 200 and response.json()["accepted"] == count, response.text


def stream_last(settings: Settings, user: str) -> int:
    client = redis.Redis(port=settings.redis_port)
    newest = client.xrevrange(keys.push_stream(settings.namespace, user), count=1)
    return int(str(newest[0][0], "ascii").split("-")[0]) if newest else 0  # type: ignore[arg-type]


def wait_pushed(settings: Settings, user: str, seq: int) -> None:
    wait_until(lambda: stream_last(settings, user) >= seq, f"seq {seq} pushed", 60)


async def collect(client: PushClient, count: int, timeout_s: float = 30) -> list[Any]:
    out = []
    async with asyncio.timeout(timeout_s), contextlib.aclosing(client.events()) as events:
        async for event in events:
            out.append(event)
            if len(out) == count:
                break
    return out


def test_a_client_that_reconnects_gets_exactly_what_it_missed_then_live(
    push_apps: Settings,
) -> None:
    settings = push_apps
    user, key = new_user(settings)
    post(settings, key, 0, 5)
    first = asyncio.run(collect(PushClient(settings.gateway_url, api_key=key, since=0), 5))
    assert [e.seq for e in first] == [1, 2, 3, 4, 5]
    # Disconnected: 100 events happen.
    post(settings, key, 5, 100)
    wait_pushed(settings, user, 105)

    async def resume_then_live() -> tuple[list[Any], PushClient]:
        client = PushClient(settings.gateway_url, api_key=key, since=5)
        reading = asyncio.create_task(collect(client, 103))
        await asyncio.sleep(1.0)
        await asyncio.to_thread(post, settings, key, 105, 3)  # live, after the resume
        return await reading, client

    events, client = asyncio.run(resume_then_live())
    assert [e.seq for e in events] == list(range(6, 109))
    assert [e.data["n"] for e in events] == list(range(5, 108))
    assert client.resumes[0].recovered and client.resumes[0].filled == 0


def test_the_client_rides_out_a_gateway_restart_without_gaps_or_repeats(
    push_apps: Settings,
) -> None:
    """`tributary.client` reading while its gateway stops and starts again: it reconnects
    with backoff and resumes from the last seq it handed out."""
    settings = push_apps
    user, key = new_user(settings)
    gateway = stack.APPS[-1]

    async def scenario() -> tuple[list[Any], PushClient]:
        client = PushClient(settings.gateway_url, api_key=key, since=0, max_delay_s=2)
        reading = asyncio.create_task(collect(client, 30, timeout_s=120))
        await asyncio.to_thread(post, settings, key, 0, 10)
        await asyncio.to_thread(wait_pushed, settings, user, 10)
        await asyncio.to_thread(stack.managed(settings, gateway).stop)
        # While no gateway listens, the agents go on: these reach Redis, not the client.
        await asyncio.to_thread(post_direct, settings, user, 10)
        await asyncio.to_thread(stack.start_app, settings, gateway)
        await asyncio.to_thread(post, settings, key, 20, 10)
        return await reading, client

    events, client = asyncio.run(scenario())
    assert [e.seq for e in events] == list(range(1, 31))
    assert client.connections >= 2
    assert all(r.recovered for r in client.resumes)


def post_direct(settings: Settings, user: str, count: int) -> None:
    """`count` events for `user` straight onto the ingest topic (the gateway is down)."""
    from cli.loadgen import produce_all
    from schemas.envelope import CloudEvent
    from schemas.topics import INGEST

    events = [
        CloudEvent(source="push", type="t.n", subject=user, data={"n": 10 + i})
        for i in range(count)
    ]
    asyncio.run(
        produce_all(
            settings.kafka_bootstrap, INGEST.physical(settings.namespace), events, window=100
        )
    )
    wait_pushed(settings, user, 20)


def test_a_resume_older_than_redis_is_filled_from_clickhouse(push_apps: Settings) -> None:
    settings = push_apps
    user, key = new_user(settings)
    post(settings, key, 0, 60)
    wait_pushed(settings, user, 60)
    db = settings.clickhouse_database
    wait_until(
        lambda: (
            query(settings, f"SELECT count() FROM {db}.events_counted WHERE user_id = '{user}'")
            == [[60]]
        ),
        "60 rows in ClickHouse",
        60,
    )
    redis.Redis(port=settings.redis_port).xtrim(
        keys.push_stream(settings.namespace, user), 10, approximate=False
    )
    client = PushClient(settings.gateway_url, api_key=key, since=5)
    events = asyncio.run(collect(client, 55))
    assert [e.seq for e in events] == list(range(6, 61))
    assert [e.data["n"] for e in events] == list(range(5, 60))
    [resume] = client.resumes
    assert resume.recovered and resume.filled == 45 and resume.since == 5


def test_a_resume_past_data_gone_everywhere_says_recovered_false(push_apps: Settings) -> None:
    """Events that exist in Redis only (written there directly), then trimmed: nothing can
    fill the gap, and the client is told where its events start again."""
    settings = push_apps
    user, key = new_user(settings)
    stream = keys.push_stream(settings.namespace, user)

    async def write(seqs: range) -> None:
        client = redis_client.connect(settings)
        for seq in seqs:
            counted = CountedData(seq=seq, source_id=f"e{seq}", source_type="t.n", data={"n": seq})
            payload = push_payload(counted, f"c{seq}", "2026-12-03T00:00:00+00:00")
            await client.xadd(stream, {STREAM_FIELD: payload}, id=f"{seq}-0")
        await notify(client, settings.namespace, {stream})
        await client.aclose()

    asyncio.run(write(range(1, 31)))
    redis.Redis(port=settings.redis_port).xtrim(stream, 10, approximate=False)  # 21..30

    async def scenario() -> tuple[list[Any], PushClient]:
        client = PushClient(settings.gateway_url, api_key=key, since=5)
        reading = asyncio.create_task(collect(client, 11))
        await asyncio.sleep(1.0)
        await write(range(31, 32))  # live
        return await reading, client

    events, client = asyncio.run(scenario())
    assert [e.seq for e in events] == list(range(21, 32))
    [resume] = client.resumes
    assert not resume.recovered and resume.earliest == 21 and resume.filled == 0


def test_a_slow_client_is_closed_and_the_gateway_holds_no_more_than_its_buffer(
    push_apps: Settings,
) -> None:
    settings = push_apps
    user, key = new_user(settings)
    stream = keys.push_stream(settings.namespace, user)
    gateway = psutil.Process(stack.managed(settings, stack.APPS[-1]).pid())
    size = 10 * 1024
    entries = 6000  # 60 MiB of messages for one client that does not read

    async def scenario() -> tuple[int, int, int | None, int]:
        client = redis_client.connect(settings)
        # A small receive buffer, and no reading while the flood goes by.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        sock.connect(("127.0.0.1", settings.gateway_port))
        ws = await websockets.connect(
            f"{ws_url(settings)}?since=0",
            sock=sock,
            additional_headers={"X-API-Key": key},
            max_queue=1,
            max_size=None,
        )
        await ws.recv()  # the resume message
        before = gateway.memory_info().rss
        peak = before
        for start in range(1, entries + 1, 200):
            pipe = client.pipeline(transaction=False)
            for seq in range(start, start + 200):
                counted = CountedData(
                    seq=seq, source_id="s", source_type="t", data={"x": "y" * size}
                )
                pipe.xadd(stream, {STREAM_FIELD: push_payload(counted, "c", "t")}, id=f"{seq}-0")
            await pipe.execute()
            await notify(client, settings.namespace, {stream})
            peak = max(peak, gateway.memory_info().rss)
            await asyncio.sleep(0.02)
        await asyncio.sleep(1.0)
        peak = max(peak, gateway.memory_info().rss)
        read = 0
        code = None
        try:
            async with asyncio.timeout(30):
                while True:
                    await ws.recv()
                    read += 1
        except websockets.ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else None
        await client.aclose()
        return before, peak, code, read

    before, peak, code, read = asyncio.run(scenario())
    print(f"slow client: read {read} of {entries}, gateway RSS +{(peak - before) / 2**20:.1f} MiB")
    assert code == 4008
    assert read < entries
    # 60 MiB went by; the gateway held its buffer, a read page and the socket's buffers.
    assert peak - before < 30 * 2**20


async def closed_with(
    url: str, headers: dict[str, str] | None = None, send: str | None = None
) -> tuple[int | None, str]:
    """The close code and reason the gateway ends a socket with (within 10 s)."""
    async with websockets.connect(url, additional_headers=headers or {}) as ws:
        if send is not None:
            await ws.send(send)
        try:
            async with asyncio.timeout(10):
                while True:
                    await ws.recv()
        except websockets.ConnectionClosed as exc:
            return (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (None, "")
    return (None, "")


def close_of(
    url: str, headers: dict[str, str] | None = None, send: str | None = None
) -> tuple[int | None, str]:
    return asyncio.run(closed_with(url, headers, send))


def test_bad_parameters_and_credentials_close_with_1008_and_a_reason(push_apps: Settings) -> None:
    settings = push_apps
    _, key = new_user(settings)
    base = ws_url(settings)
    auth = {"X-API-Key": key}
    cases = {
        "since=abc": ("since", auth),
        "since=99999999999999999999999": ("since", auth),
        "since=-3": ("since", auth),
        "channel=bogus": ("channel", auth),
        "channel=jobs&cursor=x;y": ("cursor", auth),
        "channel=container": ("id", auth),
        "since=0&api_key=trb_nope": ("invalid_api_key", None),
        "since=0": ("unauthenticated", None),  # no credential, none sent within 1 s
    }
    for params, (reason, headers) in cases.items():
        started = time.monotonic()
        code, said = close_of(f"{base}?{params}", headers)
        assert (code, said.split(":")[0]) == (1008, reason), (params, code, said)
        assert time.monotonic() - started < 5, params
    # A wrong first message is refused too; a right one is let in.
    assert close_of(f"{base}?since=0", send='{"token": "trb_nope"}')[1] == "invalid_api_key"

    async def first_message_auth() -> dict[str, Any]:
        async with websockets.connect(f"{base}?since=0") as ws:
            await ws.send(orjson.dumps({"token": key}).decode())
            return orjson.loads(await asyncio.wait_for(ws.recv(), 10))  # type: ignore[no-any-return]

    assert asyncio.run(first_message_auth())["control"] == "resume"


def test_another_users_data_is_never_reachable(push_apps: Settings) -> None:
    settings = push_apps
    alice, alice_key = new_user(settings)
    bob, bob_key = new_user(settings)
    post(settings, bob_key, 0, 3)
    post(settings, alice_key, 100, 2)
    wait_pushed(settings, bob, 3)
    wait_pushed(settings, alice, 2)
    # Alice naming Bob as the subject still reads her own stream.
    client = PushClient(settings.gateway_url, api_key=alice_key, subject=bob, since=0)
    events = asyncio.run(collect(client, 2))
    assert [e.data["n"] for e in events] == [100, 101]
    # Bob's container room is closed to Alice as if it did not exist.
    cid = uuid.uuid4().hex[:12]
    redis.Redis(port=settings.redis_port).hset(keys.container(settings.namespace, cid), "user", bob)
    url = f"{ws_url(settings)}?channel=container&id={cid}"
    assert close_of(url, {"X-API-Key": alice_key}) == (1008, "no_such_container")
    assert close_of(f"{url}&share=forged.token.here") == (1008, "no_such_container")


def test_a_client_that_stops_answering_pings_is_closed(push_apps: Settings) -> None:
    """A raw TCP client completes the handshake, then never reads or answers: the gateway
    closes the connection after the ping interval and timeout (1 s each here)."""
    settings = push_apps
    _, key = new_user(settings)
    sock = socket.create_connection(("127.0.0.1", settings.gateway_port))
    sock.sendall(
        (
            f"GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            f"Sec-WebSocket-Version: 13\r\nX-API-Key: {key}\r\n\r\n"
        ).encode()
    )
    started = time.monotonic()
    sock.settimeout(10)
    received = b""
    while chunk := sock.recv(65536):  # until the gateway closes the connection
        received += chunk
    waited = time.monotonic() - started
    sock.close()
    assert received.startswith(b"HTTP/1.1 101")
    assert 1.5 < waited < 8, waited


def test_a_draining_gateway_tells_its_sockets_to_reconnect(
    services: Settings, tmp_path: Path
) -> None:
    settings = services.model_copy(
        update={"gateway_port": free_port(), "auth_enabled": False, "shutdown_drain_s": 3.0}
    )
    log = open(tmp_path / "gateway.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "gateway"],
        env={**os.environ, **stack.settings_env(settings)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: stack.url_ok(f"{settings.gateway_url}/healthz/ready"), "gateway", 60)

        async def scenario() -> tuple[int | None, str, float, int | None]:
            async with websockets.connect(f"{ws_url(settings)}?subject=drainee") as ws:
                await ws.recv()  # the resume message
                proc.send_signal(signal.SIGTERM)
                signalled = time.monotonic()
                try:
                    await asyncio.wait_for(ws.recv(), 10)
                except websockets.ConnectionClosed as exc:
                    code, reason = (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (None, "")
            after = time.monotonic() - signalled
            # A new socket while draining is told the same.
            refused, _ = await closed_with(f"{ws_url(settings)}?subject=late")
            return code, reason, after, refused

        code, reason, after, refused = asyncio.run(scenario())
        proc.wait(35)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    assert (code, reason) == (1012, "draining: reconnect")
    assert after < settings.shutdown_drain_s  # at the start of the drain, not at the end
    assert refused == 1012
    assert proc.returncode == 0
