"""Stream engines side by side, in one run, on one broker: Faust (ours) vs Quix Streams.

The same workload (N events, 1,000 users, 6 partitions, event times 1 ms apart) and the
same logic (`bench.streams_logic.step`: GCRA limit check in event time + state update +
one output per event), at-least-once in both, one worker process each. Measured:
events/s from the first output to the last, and events per CPU-second of the worker
process (the "per core" figure). Then changelog recovery: the worker's local state is
deleted and a fresh worker restores every key from the changelog topic.

Needs the bench extra (`.venv/bin/pip install -e '.[bench]'`). Run against a running broker
(`tributary up`), e.g.:
    .venv/bin/python -m bench.streams --events 50000 --recovery-keys 20000
`BENCH_FAUST_OPTIONS` (JSON of Faust settings) and `BENCH_FAUST_NO_TABLE=1` are for diagnosis.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import typer
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from tributary.settings import Settings

PARTITIONS = 6
T0 = 1_790_000_000_000


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def create_topics(bootstrap: str, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, PARTITIONS, 1) for n in names])
    except TopicAlreadyExistsError:
        pass
    finally:
        await admin.close()


async def produce(bootstrap: str, topic: str, count: int, users: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, acks=1)
    await producer.start()
    try:
        batch = []
        for i in range(count):
            key = f"u{i % users}".encode()
            batch.append(producer.send(topic, b"{}", key=key, timestamp_ms=T0 + i))
            if len(batch) >= 5000:
                await asyncio.gather(*batch)
                batch = []
        await asyncio.gather(*batch)
    finally:
        await producer.stop()


async def end_total(consumer: AIOKafkaConsumer, topic: str) -> int:
    parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    return sum((await consumer.end_offsets(parts)).values())


def run_engine(
    settings: Settings, engine: str, source: str, expected: int, datadir: str
) -> dict[str, float]:
    """Start the engine's worker on `source`; time it until `expected` new outputs exist."""
    sink = f"{source}.{engine}.out"
    asyncio.run(create_topics(settings.kafka_bootstrap, [sink]))
    group = f"{source.replace('.', '-')}-{engine}"
    argv = [sys.executable, "-m", "bench.streams_logic", engine, settings.kafka_bootstrap]
    started = time.monotonic()
    proc = subprocess.Popen(
        [*argv, source, sink, group, datadir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    async def watch() -> dict[str, float]:
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
        await consumer.start()
        first_at = first_count = cpu_at_first = 0.0
        baseline = await end_total(consumer, sink)
        try:
            while True:
                done = await end_total(consumer, sink) - baseline
                if done and not first_at:
                    first_at, first_count = time.monotonic(), done
                    cpu_at_first = cpu_seconds(proc.pid)
                if done >= expected:
                    break
                if proc.poll() is not None:
                    raise RuntimeError(f"{engine} worker exited with {proc.returncode}")
                await asyncio.sleep(0.05)
            finished = time.monotonic()
            cpu = cpu_seconds(proc.pid) - cpu_at_first
        finally:
            await consumer.stop()
        steady = expected - first_count
        return {
            "startup_s": first_at - started,
            "seconds": finished - first_at,
            "events_per_s": steady / (finished - first_at),
            "events_per_cpu_s": steady / cpu if cpu else float("nan"),
        }

    try:
        return asyncio.run(watch())
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def recovery(
    settings: Settings, engine: str, source: str, keys: int, datadir: str
) -> dict[str, float]:
    """Delete the worker's local state, start a fresh one: seconds until it works again."""
    shutil.rmtree(datadir, ignore_errors=True)
    asyncio.run(produce(settings.kafka_bootstrap, source, 1, 1))  # one more input
    probe = run_engine(settings, engine, source, 1, datadir)
    return {"restore_and_first_output_s": probe["startup_s"]}


def main(
    events: int = typer.Option(200_000, help="events in the throughput run"),
    users: int = 1000,
    recovery_keys: int = typer.Option(0, help="keys for the changelog recovery run (0: skip)"),
) -> None:
    settings = Settings()
    run = uuid.uuid4().hex[:8]
    source = f"bench.{run}.in"
    asyncio.run(create_topics(settings.kafka_bootstrap, [source]))
    asyncio.run(produce(settings.kafka_bootstrap, source, events, users))
    print(f"{events} events, {users} users, {PARTITIONS} partitions on {settings.kafka_bootstrap}")
    root = Path(tempfile.mkdtemp(prefix="bench-streams-"))
    results = {}
    for engine in ("quix", "faust"):
        results[engine] = run_engine(settings, engine, source, events, str(root / engine))
        r = results[engine]
        print(
            f"{engine:6} startup {r['startup_s']:5.1f} s | {r['seconds']:6.1f} s | "
            f"{r['events_per_s']:9,.0f} events/s | {r['events_per_cpu_s']:9,.0f} events/CPU-s"
        )
    ratio = results["faust"]["events_per_s"] / results["quix"]["events_per_s"]
    cpu_ratio = results["faust"]["events_per_cpu_s"] / results["quix"]["events_per_cpu_s"]
    print(f"faust / quix: {ratio:.2f} (events/s), {cpu_ratio:.2f} (events per CPU-second)")
    if recovery_keys:
        rec = f"bench.{run}.rec"
        asyncio.run(create_topics(settings.kafka_bootstrap, [rec]))
        asyncio.run(produce(settings.kafka_bootstrap, rec, recovery_keys, recovery_keys))
        for engine in ("quix", "faust"):
            datadir = str(root / f"{engine}-rec")
            build = run_engine(settings, engine, rec, recovery_keys, datadir)
            restored = recovery(settings, engine, rec, recovery_keys, datadir)
            print(
                f"{engine:6} {recovery_keys:,} keys: built in {build['seconds']:.1f} s; "
                f"fresh worker restored and answered in "
                f"{restored['restore_and_first_output_s']:.1f} s"
            )
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    typer.run(main)
