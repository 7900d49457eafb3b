"""Jobs through Tributary vs the same calls made directly, side by side in one run.

Inference: both send the same N jobs (each `inputs` texts) to the same Triton model
(`minilm`), at most `concurrency` at a time, closed loop, at each concurrency given:
1. direct: plain `tritonclient` (HTTP, asyncio) calls from one process, one request per job;
2. Tributary: `POST /v1/inference` → commands → command agent → work tier → executor
   (decide, then the effect step: GPU pool slot, the cross-user batcher, Triton) →
   `job.result` → executor → `jobs.events` → status projector → `WS /v1/ws?channel=jobs`,
   i.e. the whole path a client sees, until `job.completed` arrives on the socket.
Reported: jobs/s, latency p50/p99 (send to result), the throughput ratio, the latency
Tributary adds (its p50/p99 minus direct's), and how many Triton requests and model
executions each run made (Triton's `v2/models/minilm/stats`), and the CPU each process of
the stack spent per job (ms) meanwhile: on a machine where Triton computes on the same
cores as the pipeline, that split is what bounds the throughput ratio.

Containers: N starts, one at a time: the docker SDK directly (create + start, as the
executor does) against `POST /v1/containers` until `job.completed` on the socket.

Needs the stack up with generous limits, e.g. (all processes read the same env):
    export TRIBUTARY_RATE_LIMITS=100000/s,1000000/m,10000000/h
    export TRIBUTARY_COMMAND_RATE_LIMITS=100000/s,1000000/m,10000000/h
    export TRIBUTARY_RATE_LIMITS_CONTAINERS=1000/s,10000/m,100000/h
    export TRIBUTARY_MAX_IN_FLIGHT_JOBS=10000 TRIBUTARY_MAX_RUNNING_CONTAINERS=100
    .venv/bin/tributary up && .venv/bin/python -m bench.inference
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from typing import Any

import httpx
import orjson
import typer
import websockets

from bench.cpu import BENCH, cpu_spent
from cli.demo import api_keys
from infra.local import kafka, redis, stack, triton
from schemas.jobs import ContainerSpec
from streams.jobs.runners.docker_runner import DockerRunner
from streams.jobs.runners.triton_runner import TritonRunner
from tributary.settings import Settings

MODEL = "minilm"


def texts_for(job: int, inputs: int) -> list[str]:
    return [f"job {job} sentence {i} about streaming platforms" for i in range(inputs)]


def summary(latencies: list[float], seconds: float) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "jobs_per_s": len(ordered) / seconds,
        "p50_ms": 1000 * statistics.median(ordered),
        "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
    }


async def triton_counts(settings: Settings) -> tuple[int, int]:
    """(requests answered, model executions) of the model so far."""
    runner = TritonRunner(settings.triton_url)
    try:
        stats = (await runner.stats(MODEL))["model_stats"][0]
    finally:
        await runner.close()
    return int(stats["inference_stats"]["success"]["count"]), int(stats["execution_count"])


async def direct(settings: Settings, jobs: int, inputs: int, concurrency: int) -> dict[str, float]:
    runner = TritonRunner(settings.triton_url, batch_size=max(16, inputs))
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(job: int) -> None:
        async with gate:
            sent = time.monotonic()
            await runner.embed(MODEL, texts_for(job, inputs))
            latencies.append(time.monotonic() - sent)

    started = time.monotonic()
    await asyncio.gather(*(one(j) for j in range(jobs)))
    seconds = time.monotonic() - started
    await runner.close()
    return summary(latencies, seconds)


async def through_tributary(
    settings: Settings, path: str, bodies: list[dict[str, Any]], concurrency: int
) -> dict[str, float]:
    """POST each body to `path` (at most `concurrency` unfinished), until `job.completed`
    (or `job.dead_lettered`) for each arrives on the user's jobs channel."""
    user = f"bench-{uuid.uuid4().hex[:8]}"
    key = (await api_keys(settings, [user]))[user]
    ws_url = settings.gateway_url.replace("http://", "ws://")
    sent_at: dict[str, float] = {}
    done_at: dict[str, float] = {}
    failed: list[str] = []
    all_done = asyncio.Event()
    gate = asyncio.Semaphore(concurrency)

    async def listen(ready: asyncio.Event) -> None:
        url = f"{ws_url}/v1/ws?channel=jobs&cursor=0&api_key={key}"
        async with websockets.connect(url, max_size=None) as ws:
            ready.set()
            while len(done_at) < len(bodies):
                message = orjson.loads(await ws.recv())
                if "control" in message:  # the resume message
                    continue
                job_id = message["data"]["job_id"]
                finished = message["type"] in ("job.completed", "job.dead_lettered")
                if finished and job_id not in done_at:  # steps may arrive twice
                    done_at[job_id] = time.monotonic()
                    if message["type"] != "job.completed":
                        failed.append(job_id)
                    gate.release()
            all_done.set()

    async with httpx.AsyncClient(
        base_url=settings.gateway_url, headers={"X-API-Key": key}, timeout=30
    ) as client:
        ready = asyncio.Event()
        listener = asyncio.create_task(listen(ready))
        await asyncio.wait_for(ready.wait(), 10)
        started = time.monotonic()
        for body in bodies:
            await gate.acquire()  # released when one of this user's jobs completes
            t = time.monotonic()
            response = await client.post(path, json=body)
            response.raise_for_status()
            sent_at[response.json()["job_id"]] = t
        await asyncio.wait_for(all_done.wait(), 600)
        seconds = time.monotonic() - started
        listener.cancel()
        if path == "/v1/containers":
            for job_id in sent_at:
                await client.delete(f"/v1/containers/{job_id}")
    if failed:
        raise RuntimeError(f"{len(failed)} jobs did not complete, e.g. {failed[0]}")
    return summary([done_at[j] - t for j, t in sent_at.items()], seconds)


def docker_direct(settings: Settings, starts: int) -> dict[str, float]:
    runner = DockerRunner(settings.docker_dsn, f"{settings.namespace}-bench")
    latencies: list[float] = []
    names = []
    started = time.monotonic()
    for _ in range(starts):
        spec = ContainerSpec(
            container_id=uuid.uuid4().hex[:12],
            image=settings.docker_base_image,
            command=["sleep", "600"],
        )
        t = time.monotonic()
        runner.start("bench", spec)
        latencies.append(time.monotonic() - t)
        names.append(spec.container_id)
    seconds = time.monotonic() - started
    for container_id in names:
        runner.stop(container_id)
    return summary(latencies, seconds)


def stack_pids(settings: Settings) -> dict[str, int | None]:
    """Every process of the local stack `tributary up` started with this environment."""
    pids: dict[str, int | None] = {
        "triton": triton.managed(settings).pid(),
        "kafka": kafka.managed(settings).pid(),
        "redis": redis.managed(settings).pid(),
    }
    for app, app_settings in stack.replicas(settings):
        pids[app.name] = stack.managed(app_settings, app).pid()
    return pids


def cpu_line(spent: dict[str, float], jobs: int) -> str:
    parts = [
        f"{name} {1000 * seconds / jobs:.1f}"
        for name, seconds in sorted(spent.items(), key=lambda kv: -kv[1])
        if seconds > 0.01
    ]
    return "  CPU ms per job: " + ", ".join(parts)


def row(name: str, r: dict[str, float], extra: str = "") -> None:
    print(
        f"  {name:18} {r['jobs_per_s']:7.1f} /s  p50 {r['p50_ms']:7.1f} ms"
        f"  p99 {r['p99_ms']:7.1f} ms{extra}"
    )


async def inference(settings: Settings, jobs: int, inputs: int, concurrency: int) -> None:
    print(f"inference: {jobs} jobs x {inputs} inputs, concurrency {concurrency}")
    rows = {}
    pids = stack_pids(settings)
    for name in ("direct Triton", "through Tributary"):
        before = await triton_counts(settings)
        with cpu_spent(pids) as spent:
            if name == "direct Triton":
                rows[name] = await direct(settings, jobs, inputs, concurrency)
            else:
                bodies = [{"inputs": texts_for(j, inputs)} for j in range(jobs)]
                rows[name] = await through_tributary(settings, "/v1/inference", bodies, concurrency)
        after = await triton_counts(settings)
        requests, executions = after[0] - before[0], after[1] - before[1]
        row(name, rows[name], f"  Triton requests {requests}, executions {executions}")
        print(cpu_line({k.replace(BENCH, "bench client"): v for k, v in spent.items()}, jobs))
    d, t = rows["direct Triton"], rows["through Tributary"]
    print(
        f"  Tributary / direct: {t['jobs_per_s'] / d['jobs_per_s']:.2f} (jobs/s);"
        f" added p50 {t['p50_ms'] - d['p50_ms']:.1f} ms, p99 {t['p99_ms'] - d['p99_ms']:.1f} ms"
    )


async def containers(settings: Settings, starts: int) -> None:
    print(f"containers: {starts} starts, one at a time")
    d = await asyncio.to_thread(docker_direct, settings, starts)
    row("docker SDK", d)
    body = {"image": settings.docker_base_image, "command": ["sleep", "600"]}
    t = await through_tributary(settings, "/v1/containers", [body] * starts, 1)
    row("through Tributary", t)
    print(f"  added p50 {t['p50_ms'] - d['p50_ms']:.1f} ms, p99 {t['p99_ms'] - d['p99_ms']:.1f} ms")


def main(
    jobs: int = 320,
    inputs: int = 8,
    concurrency: list[int] = typer.Option([32, 1]),
    starts: int = 20,
) -> None:
    settings = Settings()
    print(f"Triton {settings.triton_url}, engine {settings.docker_dsn}")
    for c in concurrency:
        # At one in flight, fewer jobs give the same percentiles in far less time.
        asyncio.run(inference(settings, jobs if c > 1 else max(100, jobs // 3), inputs, c))
    if starts:
        asyncio.run(containers(settings, starts))


if __name__ == "__main__":
    typer.run(main)
