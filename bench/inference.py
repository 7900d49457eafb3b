"""Inference through Tributary vs direct Triton calls, side by side in one run.

Both send the same N jobs (each `inputs` texts) to the same Triton model (`minilm`),
at most `concurrency` at a time:
1. baseline: plain `tritonclient` (HTTP, asyncio) calls from one process;
2. Tributary: `POST /v1/inference` → commands → command agent → work tier → executor →
   Triton → `jobs.events` → status projector → `WS /v1/ws?channel=jobs` (completion
   observed by the client), i.e. the whole path a client sees.
Reported: jobs/s and per-job latency p50/p99 (send to result), and the ratio.

Needs the stack up with generous limits, e.g. (all processes read the same env):
    export TRIBUTARY_RATE_LIMITS=100000/s,1000000/m,10000000/h
    export TRIBUTARY_COMMAND_RATE_LIMITS=100000/s,1000000/m,10000000/h
    export TRIBUTARY_MAX_IN_FLIGHT_JOBS=10000
    .venv/bin/tributary up && .venv/bin/python -m bench.inference --jobs 200 --inputs 8
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid

import httpx
import orjson
import typer
import websockets

from streams.runners.triton_runner import TritonRunner
from tributary.demo import api_keys
from tributary.settings import Settings


def texts_for(job: int, inputs: int) -> list[str]:
    return [f"job {job} sentence {i} about streaming platforms" for i in range(inputs)]


def summary(latencies: list[float], seconds: float) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "jobs_per_s": len(ordered) / seconds,
        "p50_ms": 1000 * statistics.median(ordered),
        "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
    }


async def direct(settings: Settings, jobs: int, inputs: int, concurrency: int) -> dict[str, float]:
    runner = TritonRunner(settings.triton_url)
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(job: int) -> None:
        async with gate:
            sent = time.monotonic()
            await runner.embed("minilm", texts_for(job, inputs))
            latencies.append(time.monotonic() - sent)

    started = time.monotonic()
    await asyncio.gather(*(one(j) for j in range(jobs)))
    seconds = time.monotonic() - started
    await runner.close()
    return summary(latencies, seconds)


async def through_tributary(
    settings: Settings, jobs: int, inputs: int, concurrency: int
) -> dict[str, float]:
    user = f"bench-{uuid.uuid4().hex[:8]}"
    key = (await api_keys(settings, [user]))[user]
    ws_url = settings.gateway_url.replace("http://", "ws://")
    sent_at: dict[str, float] = {}
    done_at: dict[str, float] = {}
    all_done = asyncio.Event()
    gate = asyncio.Semaphore(concurrency)

    async def listen() -> None:
        async with websockets.connect(f"{ws_url}/v1/ws?channel=jobs&cursor=0&api_key={key}") as ws:
            while len(done_at) < jobs:
                message = orjson.loads(await ws.recv())
                job_id = message["data"]["job_id"]
                finished = message["type"] in ("job.completed", "job.dead_lettered")
                if finished and job_id not in done_at:  # steps may arrive twice
                    done_at[job_id] = time.monotonic()
                    gate.release()
            all_done.set()

    async with httpx.AsyncClient(
        base_url=settings.gateway_url, headers={"X-API-Key": key}, timeout=30
    ) as client:
        listener = asyncio.create_task(listen())
        await asyncio.sleep(0.3)
        started = time.monotonic()
        for job in range(jobs):
            await gate.acquire()  # released when this user's job completes
            t = time.monotonic()
            response = await client.post("/v1/inference", json={"inputs": texts_for(job, inputs)})
            response.raise_for_status()
            sent_at[response.json()["job_id"]] = t
        await asyncio.wait_for(all_done.wait(), 600)
        seconds = time.monotonic() - started
        listener.cancel()
    return summary([done_at[j] - t for j, t in sent_at.items()], seconds)


def main(jobs: int = 200, inputs: int = 8, concurrency: int = 4) -> None:
    settings = Settings()
    print(f"{jobs} jobs x {inputs} inputs, concurrency {concurrency}, Triton {settings.triton_url}")
    rows = {}
    for name, run in (("direct Triton", direct), ("through Tributary", through_tributary)):
        rows[name] = asyncio.run(run(settings, jobs, inputs, concurrency))
        r = rows[name]
        print(
            f"{name:18} {r['jobs_per_s']:7.1f} jobs/s  p50 {r['p50_ms']:7.1f} ms"
            f"  p99 {r['p99_ms']:7.1f} ms"
        )
    ratio = rows["through Tributary"]["jobs_per_s"] / rows["direct Triton"]["jobs_per_s"]
    print(f"Tributary / direct: {ratio:.2f} (jobs/s)")


if __name__ == "__main__":
    typer.run(main)
