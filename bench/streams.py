"""Stream engines side by side, in one run, on one broker: ours vs Quix Streams.

Four engines: Tributary's transactional loop (`loop`, exactly-once, what the counter and
command agents run on), Faust (at-least-once, what the executors run on), and Quix Streams
at-least-once and exactly-once (the baselines). The same workload (N events, 1,000 users,
6 partitions, event times 1 ms apart) and the same logic (`bench.streams_logic.step`: GCRA
limit check in event time + state update + one output per event), one worker process
each. Measured:
events/s from the first output to the last, and events per CPU-second of the worker
process (the "per core" figure). Then changelog recovery: the worker's local state is
deleted and a fresh worker restores every key from the changelog topic.

Needs the bench extra (`.venv/bin/pip install -e '.[bench]'`). Run against a running broker
(`tributary up`), e.g.:
    .venv/bin/python -m bench.streams --events 50000 --recovery-keys 20000
    .venv/bin/python -m bench.streams --events 2000 --recovery-keys 1000000 --faust-changelog-direct
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
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import typer
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.partitioner import DefaultPartitioner

from bench.streams_logic import step
from tributary.settings import Settings

PARTITIONS = 6
ENGINES = ("quix", "quix-eos", "faust", "loop")
T0 = 1_790_000_000_000


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def create_topics(
    bootstrap: str, names: list[str], configs: dict[str, str] | None = None
) -> None:
    # Event times are fixed (T0) and would soon be past the broker's default 7-day
    # retention: a retention check then deleted a run's input while Faust was working
    # on it, and the next engine found nothing to read.
    configs = {"retention.ms": "-1", **(configs or {})}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(n, PARTITIONS, 1, topic_configs=configs) for n in names]
        )
    except TopicAlreadyExistsError:
        pass
    finally:
        await admin.close()


async def produce(bootstrap: str, topic: str, count: int, users: int) -> None:
    await send_all(
        bootstrap,
        (
            (topic, b"{}", {"key": f"u{i % users}".encode(), "timestamp_ms": T0 + i})
            for i in range(count)
        ),
    )


async def send_all(bootstrap: str, sends: Iterable[tuple[str, bytes, dict[str, Any]]]) -> None:
    """Produce every (topic, value, send() keywords), 5,000 in flight at a time."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, acks=1)
    await producer.start()
    try:
        batch = []
        for topic, value, kwargs in sends:
            batch.append(producer.send(topic, value, **kwargs))
            if len(batch) >= 5000:
                await asyncio.gather(*batch)
                batch = []
        await asyncio.gather(*batch)
    finally:
        await producer.stop()


async def end_offsets(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        return dict(
            await consumer.end_offsets([TopicPartition(topic, p) for p in range(PARTITIONS)])
        )
    finally:
        await consumer.stop()


async def read_committed_from(bootstrap: str, start: dict[TopicPartition, int]) -> AIOKafkaConsumer:
    """A read_committed consumer at `start`: counts records, not offsets (a transactional
    sink has commit markers between its records, which end offsets would count too)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed")
    await consumer.start()
    consumer.assign(list(start))
    for tp, offset in start.items():
        consumer.seek(tp, offset)
    return consumer


def run_engine(
    settings: Settings,
    engine: str,
    source: str,
    expected: int,
    datadir: str,
    timeout_s: float = 1800,
) -> dict[str, float]:
    """Start the engine's worker on `source`; time it until `expected` new outputs exist."""
    sink = f"{source}.{engine}.out"
    asyncio.run(create_topics(settings.kafka_bootstrap, [sink]))
    group = f"{source.replace('.', '-')}-{engine}"
    if engine == "loop":  # it restores from its changelogs but does not create them
        changelogs = [f"{group}-streams-{t}-changelog" for t in ("limits", "limits-position")]
        asyncio.run(
            create_topics(settings.kafka_bootstrap, changelogs, {"cleanup.policy": "compact"})
        )
    argv = [sys.executable, "-m", "bench.streams_logic", engine, settings.kafka_bootstrap]
    baseline = asyncio.run(end_offsets(settings.kafka_bootstrap, sink))
    started = time.monotonic()
    log = Path(f"{datadir}.log")  # the worker's output, named in an error
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [*argv, source, sink, group, datadir], stdout=out, stderr=subprocess.STDOUT
        )

    async def watch() -> dict[str, float]:
        consumer = await read_committed_from(settings.kafka_bootstrap, baseline)
        first_at = first_count = cpu_at_first = 0.0
        done = 0
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=50, max_records=10_000)
                done += sum(len(records) for records in batch.values())
                if done and not first_at:
                    first_at, first_count = time.monotonic(), done
                    cpu_at_first = cpu_seconds(proc.pid)
                if done >= expected:
                    break
                if proc.poll() is not None:
                    raise RuntimeError(f"{engine} worker exited with {proc.returncode}: {log}")
                if time.monotonic() - started > timeout_s:
                    raise TimeoutError(
                        f"{engine}: {done} of {expected} outputs in {timeout_s} s: {log}"
                    )
            finished = time.monotonic()
            cpu = cpu_seconds(proc.pid) - cpu_at_first
            rss = peak_rss_mb(proc.pid)
        finally:
            await consumer.stop()
        steady = expected - first_count
        return {
            "startup_s": first_at - started,
            "seconds": finished - first_at,
            "events_per_s": steady / (finished - first_at),
            "events_per_cpu_s": steady / cpu if cpu else float("nan"),
            "peak_rss_mb": rss,
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
    """Delete the worker's local state, start a fresh one: seconds until it works again.

    The probe is one more event of user `u0`, who has one event in the state: the output
    says `accepted: 2` only if the fresh worker restored that state.
    """
    shutil.rmtree(datadir, ignore_errors=True)
    asyncio.run(produce(settings.kafka_bootstrap, source, 1, 1))  # one more input, user u0
    probe = run_engine(settings, engine, source, 1, datadir)
    answer = asyncio.run(last_output(settings.kafka_bootstrap, f"{source}.{engine}.out", b"u0"))
    return {
        "restore_and_first_output_s": probe["startup_s"],
        "accepted": answer["accepted"],
        "peak_rss_mb": probe["peak_rss_mb"],
    }


async def last_output(bootstrap: str, topic: str, key: bytes) -> dict[str, Any]:
    """The last record on `topic` in the partition of `key` (the default partitioner's)."""
    partition = DefaultPartitioner()(key, list(range(PARTITIONS)), list(range(PARTITIONS)))
    tp = TopicPartition(topic, partition)
    end = (await end_offsets(bootstrap, topic))[tp]
    # The last few offsets: the last one may be a transaction's commit marker.
    consumer = await read_committed_from(bootstrap, {tp: max(0, end - 100)})
    last = None
    try:
        while await consumer.position(tp) < end:
            for record in (await consumer.getmany(tp, timeout_ms=200)).get(tp, []):
                last = record if record.key == key else last
    finally:
        await consumer.stop()
    assert last is not None, f"no output of {key!r} in the last 100 offsets of {tp}"
    return dict(orjson.loads(last.value))


async def write_faust_changelog(bootstrap: str, app_id: str, source: str, keys: int) -> None:
    """Write the state of `keys` users (one event each) straight into Faust's changelog.

    Faust builds it at ~1,500 events/s here (11 minutes for 1 M keys); recovery reads
    only the changelog, so it is written the way Faust writes it: topic
    `<app id>-limits-changelog`, compacted, key and value as JSON (the table's
    serializers), partition the source partition of the user (Faust writes each change
    to the partition of the event that made it; the source is keyed by the raw user id).
    `recovery` then checks that a fresh worker really restored it.
    """
    topic = f"{app_id}-limits-changelog"
    await create_topics(bootstrap, [topic], {"cleanup.policy": "compact"})
    partitioner, every = DefaultPartitioner(), list(range(PARTITIONS))

    def change(i: int) -> tuple[str, bytes, dict[str, Any]]:
        user = f"u{i}"
        state, _ = step(None, T0 + i)
        where = partitioner(user.encode(), every, every)
        return topic, orjson.dumps(state), {"key": orjson.dumps(user), "partition": where}

    await send_all(bootstrap, (change(i) for i in range(keys)))
    # The inputs count as processed, as they would be had Faust built the state.
    await commit_all(bootstrap, app_id, source)


async def commit_all(bootstrap: str, group: str, topic: str) -> None:
    """Commit `group`'s offsets on `topic` at its end (the group must have no members)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.commit({tp: end for tp, end in ends.items()})
    finally:
        await consumer.stop()


def main(
    events: int = typer.Option(200_000, help="events in the throughput run"),
    users: int = 1000,
    recovery_keys: int = typer.Option(0, help="keys for the changelog recovery run (0: skip)"),
    faust_changelog_direct: bool = typer.Option(
        False, help="write Faust's changelog directly instead of building it through Faust"
    ),
    engines: str = typer.Option(",".join(ENGINES), help="which engines, comma-separated"),
    recovery_engines: str = typer.Option(
        ",".join(ENGINES), help="which engines run the recovery part"
    ),
) -> None:
    settings = Settings()
    run = uuid.uuid4().hex[:8]
    source = f"bench.{run}.in"
    asyncio.run(create_topics(settings.kafka_bootstrap, [source]))
    asyncio.run(produce(settings.kafka_bootstrap, source, events, users))
    print(f"{events} events, {users} users, {PARTITIONS} partitions on {settings.kafka_bootstrap}")
    root = Path(tempfile.mkdtemp(prefix="bench-streams-"))
    results = {}
    for engine in engines.split(","):
        results[engine] = run_engine(settings, engine, source, events, str(root / engine))
        r = results[engine]
        print(
            f"{engine:8} startup {r['startup_s']:5.1f} s | {r['seconds']:6.1f} s | "
            f"{r['events_per_s']:9,.0f} events/s | {r['events_per_cpu_s']:9,.0f} events/CPU-s"
        )
    for ours, base in (("loop", "quix-eos"), ("loop", "quix"), ("faust", "quix")):
        if ours not in results or base not in results:
            continue
        ratio = results[ours]["events_per_s"] / results[base]["events_per_s"]
        cpu = results[ours]["events_per_cpu_s"] / results[base]["events_per_cpu_s"]
        print(f"{ours} / {base}: {ratio:.2f} (events/s), {cpu:.2f} (events per CPU-second)")
    for engine in recovery_engines.split(",") if recovery_keys else []:
        # An input topic per engine: the probe adds an event of u0, which must be its second.
        rec = f"bench.{run}.rec.{engine}"
        asyncio.run(create_topics(settings.kafka_bootstrap, [rec]))
        asyncio.run(produce(settings.kafka_bootstrap, rec, recovery_keys, recovery_keys))
        datadir = str(root / f"{engine}-rec")
        if engine == "faust" and faust_changelog_direct:
            t = time.monotonic()
            app_id = f"{rec.replace('.', '-')}-faust"
            asyncio.run(write_faust_changelog(settings.kafka_bootstrap, app_id, rec, recovery_keys))
            built = f"changelog written directly in {time.monotonic() - t:.1f} s"
        else:
            build = run_engine(settings, engine, rec, recovery_keys, datadir)
            built = f"built in {build['seconds']:.1f} s"
        restored = recovery(settings, engine, rec, recovery_keys, datadir)
        print(
            f"{engine:8} {recovery_keys:,} keys: {built}; fresh worker restored and "
            f"answered in {restored['restore_and_first_output_s']:.1f} s, "
            f"peak RSS {restored['peak_rss_mb']:,.0f} MiB "
            f"(u0 accepted {restored['accepted']}: 2 means its state was restored)"
        )
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    typer.run(main)
