"""Desktops through the gateway's relay: many viewers, and what a keystroke costs, one run.

1. Start `desktops` desktops through Tributary, each printing continuously (a terminal
   running `date` in a loop), plus one quiet desktop for the keystroke probe.
2. Two viewers per busy desktop, through the relay (the owner's key, and a share link),
   each asking for every change as noVNC does: the gateway's CPU and memory per viewer,
   and bytes per second per viewer.
3. Meanwhile, keystroke round trips on the quiet desktop (a key, then the update that
   shows its echo), `keys` of them directly to its VNC server and as many through the
   relay, interleaved: the latency the relay adds (target: p99 < 20 ms).

Needs the stack up with dockerd, the desktop image, and room for the desktops:
    export TRIBUTARY_RATE_LIMITS_CONTAINERS=1000/s,10000/m,100000/h
    export TRIBUTARY_COMMAND_RATE_LIMITS=1000/s,10000/m,100000/h
    export TRIBUTARY_MAX_RUNNING_CONTAINERS=200
    .venv/bin/tributary up && .venv/bin/tributary images build desktop
    .venv/bin/python -m bench.desktops --desktops 50
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable
from typing import TypeVar

import httpx
import psutil
import redis
import typer

from bench.cpu import cpu_spent
from bench.rfb import Tcp, Viewer, Ws
from cli.demo import api_keys
from infra.local import stack
from schemas import keys
from schemas.jobs import VNC_PORT
from schemas.status import ContainerStatusHash
from tributary.settings import Settings

T = TypeVar("T")
PRINTING = ["sh", "-c", "while :; do date; sleep 0.1; done"]
KEY_A, KEY_BACKSPACE = 0x61, 0xFF08


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def start_desktops(
    settings: Settings, key: str, count: int, command: list[str] | None
) -> list[str]:
    body = {"display": {"width": 1024, "height": 640}, **({"command": command} if command else {})}
    headers = {"Authorization": f"Bearer {key}"}
    ids = []
    with httpx.Client(base_url=settings.gateway_url, headers=headers, timeout=30) as client:
        for _ in range(count):
            response = client.post("/v1/containers", json=body)
            response.raise_for_status()
            ids.append(response.json()["container_id"])
        deadline = time.monotonic() + 60 + 5 * count
        pending = set(ids)
        while pending:
            for cid in list(pending):
                if client.get(f"/v1/containers/{cid}").json().get("display"):
                    pending.discard(cid)
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(pending)} desktops never became viewable")
            time.sleep(0.5)
    return ids


def address_of(settings: Settings, cid: str) -> str:
    client = redis.Redis.from_url(settings.redis_dsn)
    raw = client.hgetall(keys.container(settings.namespace, cid))
    status = ContainerStatusHash.from_fields({bytes(k): bytes(v) for k, v in raw.items()})  # type: ignore[arg-type]
    assert status.address is not None
    return status.address


async def viewers(
    settings: Settings, key: str, ids: list[str], probe: Awaitable[T]
) -> tuple[list[int], float, float, float, float, T]:
    """Two viewers per desktop, watching while `probe` runs: bytes each, seconds watched,
    the gateway's CPU seconds, its RSS before and during, and the probe's result."""
    ws = settings.gateway_url.replace("http://", "ws://")
    async with httpx.AsyncClient(
        base_url=settings.gateway_url, headers={"Authorization": f"Bearer {key}"}
    ) as client:
        shares = [(await client.post(f"/v1/containers/{cid}/share")).json()["token"] for cid in ids]
    urls = [f"{ws}/v1/containers/{cid}/display?api_key={key}" for cid in ids]
    urls += [
        f"{ws}/v1/containers/{cid}/display?share={token}"
        for cid, token in zip(ids, shares, strict=True)
    ]
    gateway = stack.managed(settings, stack.GATEWAY).pid()
    assert gateway is not None
    process = psutil.Process(gateway)
    rss_before = process.memory_info().rss
    opened = [Viewer(await Ws.open(url)) for url in urls]
    for viewer in opened:
        await viewer.handshake()
    started = time.monotonic()
    with cpu_spent({"gateway": gateway}) as spent:
        watching = [asyncio.create_task(viewer.watch(float("inf"))) for viewer in opened]
        result = await probe
        rss_during = process.memory_info().rss
        for task in watching:
            task.cancel()
        await asyncio.gather(*watching, return_exceptions=True)
    seconds = time.monotonic() - started
    for viewer in opened:
        await viewer.t.close()
    received = [v.received for v in opened]
    return received, seconds, spent["gateway"], rss_before, rss_during, result


async def keystrokes(address: str, relay_url: str, count: int) -> tuple[list[float], list[float]]:
    """Key round trips directly and through the relay, interleaved (one each, in turn), so
    both see the same machine at the same moments."""
    direct = Viewer(await Tcp.open(address, VNC_PORT))
    relayed = Viewer(await Ws.open(relay_url))
    for viewer in (direct, relayed):
        await viewer.handshake()
        await viewer.request(incremental=False)
        await viewer.next_update()
        # x11vnc answers the first key after a connection about 10 s late (it sets up its
        # keyboard then); the first few are not measured.
        for n in range(4):
            await viewer.keystroke_rtt(KEY_BACKSPACE if n % 2 else KEY_A)
    times: tuple[list[float], list[float]] = ([], [])
    for n in range(count):
        for viewer, out in zip((direct, relayed), times, strict=True):
            out.append(await viewer.keystroke_rtt(KEY_BACKSPACE if n % 2 else KEY_A))
    for viewer in (direct, relayed):
        await viewer.t.close()
    return times


def main(desktops: int = 50, keys_: int = 200) -> None:
    settings = Settings()
    user = f"bench-{uuid.uuid4().hex[:8]}"
    key = asyncio.run(api_keys(settings, [user]))[user]
    started = time.monotonic()
    busy = start_desktops(settings, key, desktops, PRINTING) if desktops else []
    [quiet] = start_desktops(settings, key, 1, None)
    print(f"{desktops} printing desktops + 1 quiet, viewable in {time.monotonic() - started:.1f} s")
    ws = settings.gateway_url.replace("http://", "ws://")
    relay = f"{ws}/v1/containers/{quiet}/display?api_key={key}"
    probe = keystrokes(address_of(settings, quiet), relay, keys_)
    if busy:
        run = viewers(settings, key, busy, probe)
        received, seconds, cpu, rss_before, rss_during, (direct, through) = asyncio.run(run)
        n = len(received)
        per_viewer = [r / seconds for r in received]
        print(
            f"{n} viewers for {seconds:.0f} s: gateway CPU {100 * cpu / seconds / n:.2f} % of a"
            f" core per viewer ({100 * cpu / seconds:.0f} % in all), memory"
            f" {(rss_during - rss_before) / n / 1024:.0f} KiB per viewer"
            f" (RSS {rss_before / 2**20:.0f} → {rss_during / 2**20:.0f} MiB)"
        )
        print(
            f"  bytes/s per viewer: median {statistics.median(per_viewer) / 1024:.0f} KiB/s,"
            f" min {min(per_viewer) / 1024:.0f}, max {max(per_viewer) / 1024:.0f}"
        )
    else:
        direct, through = asyncio.run(probe)
    for name, times in (("direct VNC", direct), ("through the relay", through)):
        print(
            f"  keystroke round trip, {name:17}: p50 {1000 * statistics.median(times):6.2f} ms"
            f"  p99 {1000 * percentile(times, 0.99):6.2f} ms"
        )
    added_p50 = statistics.median(through) - statistics.median(direct)
    added_p99 = percentile(through, 0.99) - percentile(direct, 0.99)
    print(f"  added by the relay: p50 {1000 * added_p50:.2f} ms, p99 {1000 * added_p99:.2f} ms")
    with httpx.Client(
        base_url=settings.gateway_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as client:
        for cid in [*busy, quiet]:
            client.delete(f"/v1/containers/{cid}")


if __name__ == "__main__":
    typer.run(main)
