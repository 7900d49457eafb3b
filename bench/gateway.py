"""Gateway ingestion vs raw aiokafka, side by side in one run, on the same broker and cores.

1. raw: one process produces the same CloudEvents with aiokafka (idempotent, acks=all),
   pipelined; events/s.
2. gateway: a real gateway process (auth by API key, limits raised), loaded by `wrk`
   (32 connections, bounded duration) on POST /v1/events; events/s, p50/p99.
3. gateway at half its sustained rate, open loop (a lean asyncio client, requests
   scheduled at fixed times, latency measured from the scheduled time): p50/p99.
4. the same events through POST /v1/events/batch, 100 per request (wrk, 8 connections):
   events/s and per-request p50/p99.
5. the ceiling: uvicorn as the gateway runs it, with an ASGI app that answers 202 and does
   nothing else (`bench.asgi_ceiling`), under the same wrk load as row 2.

The broker is a JVM: it is warmed up (an unmeasured raw run, a wrk warm-up) before rows 1
and 2 are measured, so neither pays for its JIT. Rows 1 and 2 also print the CPU each
process spent per event (`bench.cpu`): on shared cores, that is where the ratio comes from.
Rows 3 and 5 print it too, and row 5 is also run open loop at the gateway's half rate: a
saturated event loop and one that wakes up for every request pay differently per request,
the bare app as well as the gateway (bench/RESULTS.md, issue 4, ninth session).

Needs `tributary up` (broker, Redis), `wrk` (`apt-get install wrk`) and the bench extras:
    .venv/bin/python -m bench.gateway
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import typer

from bench.cpu import BENCH, cpu_spent, per_event_us
from cli.demo import api_keys
from cli.loadgen import produce_all
from infra.local import kafka, redis, stack
from infra.local.process import free_port
from schemas.envelope import CloudEvent
from schemas.topics import INGEST
from tributary.settings import Settings

BODY = {"source": "bench", "type": "bench.event", "data": {"n": 1, "text": "x" * 64}}
BATCH = 100  # events per request in the batch row
WARM_UP_S = 5  # wrk on the gateway before a measured run (the broker's JIT, the gateway's caches)
PROCESSES = ("gateway", "broker", "redis", BENCH)  # whose CPU per event the tables show


async def raw_producer(settings: Settings, count: int) -> float:
    events = (CloudEvent(subject=f"u{i % 100}", **BODY) for i in range(count))  # type: ignore[arg-type]
    started = time.perf_counter()
    await produce_all(
        settings.kafka_bootstrap,
        INGEST.physical(settings.namespace),
        events,
        window=1000,
        linger_ms=1,
    )
    return count / (time.perf_counter() - started)


def run_wrk(
    url: str, key: str, seconds: int, connections: int, path: str = "/v1/events", body: Any = BODY
) -> tuple[float, float, float]:
    script = Path(tempfile.mkdtemp()) / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = '{orjson.dumps(body).decode()}'\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["X-API-Key"] = "{key}"\n'
        "done = function(summary, latency, requests)\n"
        '  io.write(string.format("non2xx %d\\n", summary.errors.status))\n'
        "end\n"
    )
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            f"{url}{path}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    non2xx = int(re.search(r"non2xx (\d+)", out).group(1))  # type: ignore[union-attr]
    if non2xx:
        raise RuntimeError(f"{non2xx} answers were not 2xx:\n{out}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return rate, _ms(out, "50%"), _ms(out, "99%")


def _ms(out: str, pct: str) -> float:
    value, unit = re.search(rf"{pct}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


async def open_loop(
    url: str, key: str, rate: float, seconds: int, connections: int = 64
) -> tuple[float, float, int]:
    """Requests scheduled at fixed times; latency counted from the scheduled time.

    A lean client (keep-alive HTTP/1.1 on plain asyncio streams, one request in flight per
    connection) so that the load generator, which shares the two cores, costs little: a
    request that finds every connection busy waits, and its wait counts as latency.
    """
    host, port = url.removeprefix("http://").split(":")
    body = orjson.dumps(BODY)
    request = (
        f"POST /v1/events HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"X-API-Key: {key}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    start = time.perf_counter() + 0.2
    due_times = [start + i / rate for i in range(int(rate * seconds))]
    due_times.reverse()  # pop() from the end: the earliest first
    latencies: list[float] = []
    errors = 0

    async def connection() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while due_times:
                due = due_times.pop()
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)content-length: (\d+)", head)
                await reader.readexactly(int(length.group(1)) if length else 0)
                latencies.append((time.perf_counter() - due) * 1000)
                errors += not head.startswith(b"HTTP/1.1 202")
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(connections)))
    latencies.sort()
    return latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)], errors


def bench_settings(workers: int) -> Settings:
    """A namespace of its own on the running broker and Redis, limits out of the way."""
    settings = Settings(
        namespace=f"bench-{uuid.uuid4().hex[:6]}",
        gateway_port=free_port(),
        gateway_workers=workers,
        log_level="WARNING",
        rate_limits="1000000/s",
        data_dir=Path(tempfile.mkdtemp()),
    )
    kafka.ensure_topics(settings)
    return settings


def service_pids() -> dict[str, int | None]:
    """The broker's and Redis's pids if `tributary up` started them with this environment's
    data folder (the bench's own settings have a folder of their own); else not measured."""
    env = Settings()
    return {"broker": kafka.managed(env).pid(), "redis": redis.managed(env).pid()}


def path_pids(gateway: int | None) -> dict[str, int | None]:
    """The processes an event through the gateway costs CPU in (the load generator aside)."""
    return {"gateway": gateway, **service_pids()}


def measure_raw(settings: Settings, events: int) -> tuple[float, dict[str, float]]:
    """Row 1 after an unmeasured warm-up run: (events/s, CPU µs per event by process)."""
    asyncio.run(raw_producer(settings, max(1, events // 5)))
    with cpu_spent(service_pids()) as spent:
        rate = asyncio.run(raw_producer(settings, events))
    return rate, per_event_us(spent, events)


@contextmanager
def running_gateway(settings: Settings) -> Iterator[tuple[str, str, int | None]]:
    """A gateway process (`settings.gateway_workers` uvicorn workers): (url, API key, pid)."""
    gateway = next(a for a in stack.APPS if a.name == "gateway")
    proc = stack.managed(settings, gateway)
    try:
        stack.start_app(settings, gateway)
        key = asyncio.run(api_keys(settings, ["bench-user"]))["bench-user"]
        yield settings.gateway_url, key, proc.pid()
    finally:
        proc.stop(timeout_s=30)


def measure_wrk(
    url: str, key: str, pid: int | None, seconds: int, connections: int
) -> tuple[tuple[float, float, float], dict[str, float]]:
    """Row 2 after a warm-up: ((events/s, p50, p99), CPU µs per event by process)."""
    run_wrk(url, key, WARM_UP_S, connections)
    return wrk_with_cpu(url, key, path_pids(pid), seconds, connections)


def wrk_with_cpu(
    url: str, key: str, pids: dict[str, int | None], seconds: int, connections: int
) -> tuple[tuple[float, float, float], dict[str, float]]:
    """`run_wrk`, and the CPU µs per event of the processes in `pids` meanwhile."""
    with cpu_spent(pids) as spent:
        started = time.perf_counter()
        result = run_wrk(url, key, seconds, connections)
        elapsed = time.perf_counter() - started
    return result, per_event_us(spent, result[0] * elapsed)


def open_loop_with_cpu(
    url: str, key: str, pids: dict[str, int | None], rate: float, seconds: int
) -> tuple[tuple[float, float, int], dict[str, float]]:
    """`open_loop`, and the CPU µs per event of the processes in `pids` meanwhile."""
    with cpu_spent(pids) as spent:
        result = asyncio.run(open_loop(url, key, rate, seconds))
    return result, per_event_us(spent, int(rate * seconds))


def main(
    raw_events: int = 50_000, seconds: int = 10, connections: int = 32, workers: int = 1
) -> None:
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")
    settings = bench_settings(workers)
    raw_rate, raw_cpu = measure_raw(settings, raw_events)
    with running_gateway(settings) as (url, key, pid):
        (rate, p50, p99), gateway_cpu = measure_wrk(url, key, pid, seconds, connections)
        half = rate / 2
        (h50, h99, errors), half_cpu = open_loop_with_cpu(url, key, path_pids(pid), half, seconds)
        batch = {"events": [BODY] * BATCH}
        b_rate, b50, b99 = run_wrk(url, key, seconds, 8, "/v1/events/batch", batch)
    (c_rate, c50, c99), ceiling_cpu, ceiling_half_cpu = ceiling(seconds, connections, half)
    print("\n| path | events/s | p50 ms | p99 ms | vs raw |\n|---|---|---|---|---|")
    print(f"| raw aiokafka, one process, pipelined (baseline) | {raw_rate:,.0f} | | | 1.00 |")
    print(
        f"| gateway, wrk {connections} connections, saturated | {rate:,.0f} | {p50:.1f} | "
        f"{p99:.1f} | {rate / raw_rate:.2f} |"
    )
    print(
        f"| gateway, open loop at half that rate ({half:,.0f}/s) | {half:,.0f} | {h50:.1f} | "
        f"{h99:.1f} | |"
    )
    print(
        f"| gateway, POST /v1/events/batch of {BATCH}, wrk 8 connections | {b_rate * BATCH:,.0f}"
        f" | {b50:.1f} | {b99:.1f} | {b_rate * BATCH / raw_rate:.2f} |"
    )
    print(
        f"| ceiling: uvicorn + an ASGI app answering 202, no work, wrk {connections} connections"
        f" | {c_rate:,.0f} | {c50:.1f} | {c99:.1f} | {c_rate / raw_rate:.2f} |"
    )
    if errors:
        print(f"({errors} non-202 answers in the open-loop run)")
    print(
        cpu_table(
            {
                "raw aiokafka (the bench process)": raw_cpu,
                "gateway, wrk": gateway_cpu,
                "gateway, open loop at half rate (the client in the bench process)": half_cpu,
                "ceiling app (in the gateway column), wrk": ceiling_cpu,
                f"ceiling app, open loop at the gateway's half rate ({half:,.0f}/s)": (
                    ceiling_half_cpu
                ),
            }
        )
    )


def cpu_table(rows: dict[str, dict[str, float]]) -> str:
    """CPU µs per event by process, one row per run; the bench process column holds the
    raw producer in the raw row and the load generator (wrk, or the open-loop client) in
    the gateway rows."""
    lines = [
        "\n| CPU µs per event | " + " | ".join(PROCESSES) + " | total |",
        "|---|" + "---|" * (len(PROCESSES) + 1),
    ]
    for label, cpu in rows.items():
        cells = [cpu_cell(cpu, name) for name in PROCESSES]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {sum(cpu.values()):,.0f} |")
    return "\n".join(lines)


def cpu_cell(cpu: dict[str, float], name: str) -> str:
    """µs per event of process `name`, blank where it was not measured."""
    return f"{cpu[name]:,.0f}" if name in cpu else ""


def ceiling(
    seconds: int, connections: int, half: float
) -> tuple[tuple[float, float, float], dict[str, float], dict[str, float]]:
    """Row 5: the same wrk load on `bench.asgi_ceiling`, served the way the gateway is; then
    the open loop at the gateway's half rate on it. ((events/s, p50, p99), CPU µs per
    request under wrk, CPU µs per request at `half`); its CPU goes in the gateway column."""
    with serving_asgi("bench.asgi_ceiling:app") as (url, pid):
        run_wrk(url, "-", 2, connections)  # warm-up
        result, saturated = wrk_with_cpu(url, "-", {"gateway": pid}, seconds, connections)
        _, at_half = open_loop_with_cpu(url, "-", {"gateway": pid}, half, seconds)
        return result, saturated, at_half


def wrk_on_asgi(
    app: str, key: str, seconds: int, connections: int, env: dict[str, str] | None = None
) -> tuple[float, float, float]:
    """wrk on the ASGI app `module:name`, run by uvicorn with the gateway's flags."""
    with serving_asgi(app, env) as (url, _):
        run_wrk(url, key, 2, connections)  # warm-up
        return run_wrk(url, key, seconds, connections)


@contextmanager
def serving_asgi(app: str, env: dict[str, str] | None = None) -> Iterator[tuple[str, int]]:
    """The ASGI app `module:name` run by uvicorn with the gateway's flags: (url, pid)."""
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", app, "--port", str(port)]
    flags = ["--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"]
    flags += ["--no-proxy-headers", "--no-server-header"]
    proc = subprocess.Popen([*argv, *flags], env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while not _answers(url):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{app} did not start")
            time.sleep(0.1)
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(10)


def _answers(url: str) -> bool:
    """An empty POST answered 202: the app is up."""
    try:
        return httpx.post(url, timeout=2).status_code == 202
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    typer.run(main)
