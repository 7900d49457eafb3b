"""WebSocket push at many clients, one run on loopback (issue #19).

1. Start a stack of its own (one broker, Redis, projector, worker, gateway) under
   `.tributary-bench-push/`, and make `--clients` users with API keys.
2. Idle sockets: the gateway's resident memory and its Redis connections (`CLIENT LIST`,
   by the name its client gives them) with no socket, with `--clients / 2` and with
   `--clients` live-only sockets open, one per user: memory per idle connection from each
   step (the two should agree: a check that the figure is per connection, not noise).
3. Load: `--rate` events/s for `--seconds`, spread over the users round robin, each a
   `POST /v1/events` on one of 32 keep-alive connections (a minimal HTTP/1.1 client, so
   the load generator's CPU stays small); per event, the time from writing its request
   to its WebSocket message arriving (p50, p99, max), events lost, the gateway's Redis
   connections under load, and the CPU each process spent.

A known answer to check against: with the load at 1 event/s the latency is the
pipeline's floor (gateway → Kafka → counter agent's transaction → push projector →
Redis → the gateway's reader → socket), tens of ms; the figures at full rate can only
be above it.

    .venv/bin/python -m bench.push --clients 1000 --rate 1000 --seconds 30
"""

from __future__ import annotations

import asyncio
import gc
import shutil
import statistics
import time
import uuid
from pathlib import Path

import orjson
import psutil
import redis
import typer
import websockets

from bench.cpu import cpu_spent
from bench.inference import stack_pids
from cli.demo import api_keys
from infra.local import stack
from infra.local.process import free_port
from schemas.envelope import header_value
from schemas.topics import COUNTED, INGEST
from tributary.kafka_clients import read_to_end
from tributary.settings import Settings

ROOT = Path(__file__).resolve().parents[1] / ".tributary-bench-push"
CONNECTIONS = 32
WARM_S = 40.0


def settings_for() -> Settings:
    base = free_port()
    return Settings(
        data_dir=ROOT,
        namespace=f"bench-push-{uuid.uuid4().hex[:6]}",
        kafka_port=base,
        kafka_controller_port=base + 1,
        kafka_heap="512m",
        redis_port=free_port(),
        gateway_port=free_port(),
        projector_port=free_port(),
        worker_web_port=free_port(),
        dashboard_port=free_port(),
        rate_limits="100000/s,10000000/m,100000000/h",
        log_level="WARNING",
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Http:
    """One keep-alive HTTP/1.1 connection: a request written, its response read."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Http:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def post(self, path: str, body: bytes, key: str) -> tuple[int, bytes]:
        self.writer.write(
            f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            f"X-API-Key: {key}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        return status, await self.reader.readexactly(length)


class Clients:
    """Live-only sockets, one per user; every message's arrival time by its `data.b`."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.arrived: dict[int, float] = {}
        self.sockets: list[websockets.ClientConnection] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.closed = 0

    async def open(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 50):
            opened = await asyncio.gather(*(self._open(k) for k in keys[start : start + 50]))
            self.sockets.extend(opened)
        for ws in self.sockets[len(self.tasks) :]:
            self.tasks.append(asyncio.create_task(self._read(ws)))

    async def _open(self, key: str) -> websockets.ClientConnection:
        ws = await websockets.connect(self.url, additional_headers={"X-API-Key": key})
        await ws.recv()  # the resume message: subscribed
        return ws

    async def _read(self, ws: websockets.ClientConnection) -> None:
        try:
            async for raw in ws:
                self.arrived[orjson.loads(raw)["data"]["b"]] = time.time()
        except websockets.ConnectionClosed:
            pass
        self.closed += 1

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*(ws.close() for ws in self.sockets), return_exceptions=True)


def gateway_view(settings: Settings, gateway: psutil.Process) -> tuple[float, int]:
    """The gateway's RSS (MiB) and its Redis connections."""
    client = redis.Redis(port=settings.redis_port)
    connections = sum(1 for c in client.client_list() if c.get("name") == "tributary-gateway")
    return gateway.memory_info().rss / 2**20, connections


async def load(
    settings: Settings, keys: list[str], clients: Clients, rate: float, seconds: float
) -> tuple[dict[int, float], dict[int, str], int]:
    """Paced POSTs; returns when each was written (epoch s), the event ids the gateway
    gave them, and how many were not 202."""
    conns = [await Http.open(settings.gateway_port) for _ in range(CONNECTIONS)]
    queue: asyncio.Queue[int] = asyncio.Queue()
    written: dict[int, float] = {}
    ids: dict[int, str] = {}
    refused = 0

    async def worker(http: Http) -> None:
        nonlocal refused
        while True:
            n = await queue.get()
            body = orjson.dumps({"source": "bench", "type": "bench.push", "data": {"b": n}})
            written[n] = time.time()
            status, answer = await http.post("/v1/events", body, keys[n % len(keys)])
            if status == 202:
                ids[n] = orjson.loads(answer)["id"]
            else:
                refused += 1
            queue.task_done()

    workers = [asyncio.create_task(worker(c)) for c in conns]
    total = int(rate * seconds)
    started = time.perf_counter()
    for n in range(total):
        delay = started + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait(n)
    await queue.join()
    deadline = time.monotonic() + 30
    while len(clients.arrived) < total - refused and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    for w in workers:
        w.cancel()
    for c in conns:
        c.writer.close()
    return written, ids, refused


async def hops(
    settings: Settings, written: dict[int, float], ids: dict[int, str], arrived: dict[int, float]
) -> dict[str, list[float]]:
    """Per event, ms spent in each hop, from the records' own timestamps: the ingest
    record's (the gateway's produce) and the counted record's (the agent's produce, before
    its transaction commits); all clocks are this machine's."""
    bootstrap, ns = settings.kafka_bootstrap, settings.namespace
    produced = {
        header_value(r.headers, "ce_id"): r.timestamp / 1000
        for r in await read_to_end(bootstrap, INGEST.physical(ns))
    }
    counted: dict[str, float] = {}
    for r in await read_to_end(bootstrap, COUNTED.physical(ns)):
        source = orjson.loads(r.value).get("source_id")
        counted[source] = min(counted.get(source, float("inf")), r.timestamp / 1000)
    out: dict[str, list[float]] = {
        "POST written → on the ingest topic (gateway)": [],
        "→ counted record produced (agent, before its commit)": [],
        "→ WebSocket message (commit, push projector, Redis, reader, socket)": [],
    }
    names = list(out)
    for n, event_id in ids.items():
        if n not in arrived or event_id not in produced or event_id not in counted:
            continue
        out[names[0]].append((produced[event_id] - written[n]) * 1000)
        out[names[1]].append((counted[event_id] - produced[event_id]) * 1000)
        out[names[2]].append((arrived[n] - counted[event_id]) * 1000)
    return out


async def run(settings: Settings, users: int, rate: float, seconds: float) -> None:
    names = [f"bench-{i}" for i in range(users)]
    by_name = await api_keys(settings, names)
    keys = [by_name[n] for n in names]
    gateway = psutil.Process(stack.managed(settings, stack.APPS[-1]).pid())
    url = settings.gateway_url.replace("http://", "ws://") + "/v1/ws"
    clients = Clients(url)
    # Warm every hop at the full rate for a while (the broker's JIT compiles for tens of
    # seconds after a start, at up to a core: measured here), with a few sockets.
    warm = Clients(url)
    await warm.open(keys[:10])
    await load(settings, keys[:10], warm, rate, WARM_S)
    await warm.close()
    gc.collect()
    await asyncio.sleep(2)
    steps = [gateway_view(settings, gateway)]
    for count in (users // 2, users):
        await clients.open(keys[len(clients.sockets) : count])
        await asyncio.sleep(3)
        steps.append(gateway_view(settings, gateway))
    print("| sockets | gateway RSS (MiB) | KiB per socket (this step) | Redis connections |")
    print("|---|---|---|---|")
    opened = [0, users // 2, users]
    for i, (rss, conns) in enumerate(steps):
        per = (
            "" if i == 0 else f"{(rss - steps[i - 1][0]) * 1024 / (opened[i] - opened[i - 1]):.1f}"
        )
        print(f"| {opened[i]} | {rss:.1f} | {per} | {conns} |")
    with cpu_spent(stack_pids(settings)) as spent:
        under = asyncio.create_task(asyncio.sleep(seconds / 2))
        loading = asyncio.create_task(load(settings, keys, clients, rate, seconds))
        await under
        _, conns_under_load = gateway_view(settings, gateway)
        written, ids, refused = await loading
    latencies = [
        (clients.arrived[n] - t) * 1000 for n, t in written.items() if n in clients.arrived
    ]
    lost = len(written) - refused - len(latencies)
    print(
        f"\n{len(written)} events at {rate:.0f}/s to {users} sockets: "
        f"p50 {statistics.median(latencies):.1f} ms, p99 {percentile(latencies, 0.99):.1f} ms, "
        f"max {max(latencies):.1f} ms; not 202: {refused}; lost: {lost}; "
        f"gateway Redis connections under load: {conns_under_load}; "
        f"sockets closed: {clients.closed}"
    )
    print("CPU seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in spent.items()))
    print("\n| hop | p50 ms | p99 ms |\n|---|---|---|")
    for hop, values in (await hops(settings, written, ids, clients.arrived)).items():
        if values:
            print(f"| {hop} | {statistics.median(values):.1f} | {percentile(values, 0.99):.1f} |")
    await clients.close()


def main(
    clients: int = typer.Option(1000, help="Sockets, one per user"),
    rate: float = typer.Option(1000.0, help="Events per second, over all users"),
    seconds: float = typer.Option(30.0, help="Seconds of load"),
) -> None:
    settings = settings_for()
    shutil.rmtree(ROOT, ignore_errors=True)
    try:
        stack.up(settings, echo=lambda _: None, jobs=False)
        asyncio.run(run(settings, clients, rate, seconds))
    finally:
        stack.down(settings, echo=lambda _: None)


if __name__ == "__main__":
    typer.run(main)
