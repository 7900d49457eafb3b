"""Projection throughput, side by side in one run, on one chDB folder:

1. baseline: a plain clickhouse-connect insert of the same rows from memory (50k blocks);
2. the projector consuming the topic into ClickHouse (exactly-once path, offsets, tokens);
3. a replay of the topic into a rebuilt table, swapped in.

Run against a running broker (`tributary up`):
    .venv/bin/python -m bench.projection --events 1000000
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import typer
from aiokafka.structs import ConsumerRecord

from cli.loadgen import produce_all
from infra.local import kafka
from projections.clickhouse import connect
from projections.migrations import migrate
from projections.projector import Projector
from projections.replay import Replay
from projections.tables import for_topic
from schemas.envelope import CloudEvent, to_kafka
from schemas.topics import INGEST
from tributary.gc_tuning import tune_for_throughput
from tributary.settings import Settings

USERS = 1000


def make_events(count: int) -> list[CloudEvent]:
    return [
        CloudEvent(source="bench", type="bench.event", subject=f"u{i % USERS}", data={"n": i})
        for i in range(count)
    ]


def record(topic: str, partition: int, offset: int, event: CloudEvent) -> ConsumerRecord:  # type: ignore[type-arg]
    key, value, headers = to_kafka(event)
    return ConsumerRecord(
        topic, partition, offset, 0, 0, key, value, None, len(key), len(value), tuple(headers)
    )


async def produce(settings: Settings, events: list[CloudEvent]) -> None:
    await produce_all(
        settings.kafka_bootstrap,
        INGEST.physical(settings.namespace),
        events,
        window=20_000,
        acks="all",
        linger_ms=50,
        max_batch_size=1024 * 1024,
        compression_type=None,
    )


async def run_projector(projector: Projector, expected: int) -> float:
    stop = asyncio.Event()
    task = asyncio.create_task(projector.run(stop))
    table = f"{projector.ch.database}.events_ingest"
    started = time.perf_counter()
    while True:
        _, rows = await asyncio.to_thread(projector.ch.query, f"SELECT count() FROM {table}")
        if rows[0][0] >= expected:
            break
        await asyncio.sleep(0.05)
    seconds = time.perf_counter() - started
    stop.set()
    await task
    return seconds


async def bench(events: int, batch_rows: int) -> None:
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    folder = Path(tempfile.mkdtemp(prefix="tributary-bench-"))
    settings = Settings(
        namespace=namespace,
        clickhouse_database=namespace.replace("-", "_"),
        chdb_dir=folder / "chdb",
        projector_batch_rows=batch_rows,
        projector_batch_ms=1000,
    )
    await asyncio.to_thread(kafka.ensure_topics, settings)
    print(f"generating and producing {events:,} events to {INGEST.physical(namespace)} ...")
    sample = make_events(events)
    t = time.perf_counter()
    await produce(settings, sample)
    print(f"  produced in {time.perf_counter() - t:.1f}s (not part of the comparison)")

    ch = connect(settings)
    migrate(ch)
    projection = for_topic(INGEST.name)
    rows = [projection.row(record("bench", i % 6, i, e)) or () for i, e in enumerate(sample)]
    del sample
    ch.command(f"CREATE TABLE {ch.database}.plain AS {ch.database}.events_ingest")
    t = time.perf_counter()
    for start in range(0, len(rows), batch_rows):
        ch.client.insert(
            "plain",
            rows[start : start + batch_rows],
            column_names=list(projection.columns),
            database=ch.database,
            settings={"insert_deduplication_token": f"plain-{start}"},
        )
    plain_s = time.perf_counter() - t
    del rows

    projector = Projector(settings, ch)
    tune_for_throughput()  # as the projector process does (projections/service.py)
    projector_s = await run_projector(projector, events)

    job = Replay(projector, INGEST.name)
    t = time.perf_counter()
    status = (await job.run()).as_dict()
    replay_s = time.perf_counter() - t
    assert status["state"] == "done", status
    _, counted = ch.query(
        f"SELECT count(), uniqExact(_partition, _offset) FROM {ch.database}.events_ingest"
    )
    assert counted == [(events, events)], counted
    ch.close()
    shutil.rmtree(folder, ignore_errors=True)

    print("\n| path | seconds | rows/s | vs plain insert |\n|---|---|---|---|")
    for name, seconds in (
        ("plain clickhouse-connect insert from memory (baseline)", plain_s),
        ("projector: Kafka → ClickHouse, exactly once", projector_s),
        ("replay: topic → new table → EXCHANGE", replay_s),
    ):
        print(f"| {name} | {seconds:.1f} | {events / seconds:,.0f} | {plain_s / seconds:.2f} |")


def main(events: int = typer.Option(1_000_000), batch_rows: int = typer.Option(50_000)) -> None:
    asyncio.run(bench(events, batch_rows))


if __name__ == "__main__":
    typer.run(main)
