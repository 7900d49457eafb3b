"""Stream engines side by side, in one run, on one broker, from a preloaded backlog.

Engines: Tributary's transactional loop (exactly-once, what the deciding agents run on)
with its tables in memory (`loop`) and in RocksDB (`loop-rocksdb`), Faust (at-least-once),
and Quix Streams at-least-once and exactly-once (the baselines). The same workload (N
events, 1,000 users, 6 partitions, event times 1 ms apart) is on the input topic before any
engine starts, and each runs the same logic (`bench.streams_logic.step`: GCRA limit check
in event time + state update + one output per event) in one worker process. Measured, from
the worker's start to its last output visible to a `read_committed` reader (an
exactly-once engine's outputs appear only at its commits, so timing from its first output
would flatter it): events/s, events per CPU-second of the worker's process tree over the
same span, and peak RSS.

Then changelog recovery: a fresh worker restores K keys from the changelog topic and
answers one more event; the answer proves the state came back. The loop's and Faust's
changelogs are written directly (as they write them), so a 10 M-key run does not first
process 10 M events.

Needs the bench extra (`.venv/bin/pip install -e '.[bench]'`). Run against a running broker
(`tributary up`), e.g.:
    .venv/bin/python -m bench.streams --events 200000 --recovery-keys 1000000
    .venv/bin/python -m bench.streams --events 0 --recovery-keys 10000000 \
        --recovery-engines loop-rocksdb
`BENCH_FAUST_OPTIONS` (JSON of Faust settings) and `BENCH_FAUST_NO_TABLE=1` are for diagnosis.
"""

from __future__ import annotations

import asyncio
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
import psutil
import typer
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.partitioner import DefaultPartitioner

from bench.streams_logic import step
from streams.runtime.recovery import POSITION
from tributary.settings import Settings

PARTITIONS = 6
COMPACTED = {"cleanup.policy": "compact"}
ENGINES = ("loop", "loop-rocksdb", "quix", "quix-eos", "faust")
DIRECT = ("loop", "loop-rocksdb", "faust")  # whose changelog recovery writes directly
T0 = 1_790_000_000_000


def tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def peak_rss_mb(pid: int) -> float:
    """The peak resident memory so far (VmHWM) of the process and its children, MiB."""
    total = 0
    for proc in tree(pid):
        for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1])
    return total / 1024


def cpu_seconds(pid: int) -> float:
    """CPU (user + system) of the process and its children so far, seconds."""
    return sum(t.user + t.system for t in (p.cpu_times() for p in tree(pid)))


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
    if engine.startswith("loop"):  # it restores from its changelogs but does not create them
        asyncio.run(create_topics(settings.kafka_bootstrap, loop_changelogs(group), COMPACTED))
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
        first_at = 0.0
        done = 0
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=50, max_records=10_000)
                done += sum(len(records) for records in batch.values())
                if done and not first_at:
                    first_at = time.monotonic()
                if done >= expected:
                    break
                if proc.poll() is not None:
                    raise RuntimeError(f"{engine} worker exited with {proc.returncode}: {log}")
                if time.monotonic() - started > timeout_s:
                    raise TimeoutError(
                        f"{engine}: {done} of {expected} outputs in {timeout_s} s: {log}"
                    )
            finished = time.monotonic()
            cpu = cpu_seconds(proc.pid)
            rss = peak_rss_mb(proc.pid)
        finally:
            await consumer.stop()
        return {
            "first_output_s": first_at - started,
            "seconds": finished - started,
            "events_per_s": expected / (finished - started),
            "events_per_cpu_s": expected / cpu,
            "cpu_s": cpu,
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
        "restore_and_first_output_s": probe["seconds"],
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
    await create_topics(bootstrap, [topic], COMPACTED)
    await send_all(bootstrap, user_states(topic, keys))
    # The inputs count as processed, as they would be had Faust built the state.
    await commit_all(bootstrap, app_id, source)


def user_states(topic: str, keys: int) -> Iterable[tuple[str, bytes, dict[str, Any]]]:
    """The limit state of users u0 .. u<keys - 1> after one event each, as changelog
    records (JSON key and value) in the partition of the user's input records."""
    partitioner, every = DefaultPartitioner(), list(range(PARTITIONS))
    for i in range(keys):
        user = f"u{i}"
        state, _ = step(None, T0 + i)
        where = partitioner(user.encode(), every, every)
        yield topic, orjson.dumps(state), {"key": orjson.dumps(user), "partition": where}


def loop_changelogs(group: str) -> list[str]:
    """The loop's changelogs in `bench.streams_logic` (its namespace is the group)."""
    return [f"{group}-streams-{t}-changelog" for t in ("limits", "limits-position")]


async def write_loop_changelog(bootstrap: str, group: str, source: str, keys: int) -> None:
    """Write the state of `keys` users straight into the loop's changelogs: the limits
    table, and the position table saying each input partition is processed to its end."""
    limits, positions = loop_changelogs(group)
    await create_topics(bootstrap, [limits, positions], COMPACTED)
    await send_all(bootstrap, user_states(limits, keys))
    ends = await end_offsets(bootstrap, source)
    await send_all(
        bootstrap,
        (
            (
                positions,
                orjson.dumps(end),
                {"key": orjson.dumps(POSITION), "partition": tp.partition},
            )
            for tp, end in ends.items()
        ),
    )


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
    events: int = typer.Option(200_000, help="events in the throughput run (0: skip it)"),
    users: int = 1000,
    recovery_keys: int = typer.Option(0, help="keys for the changelog recovery run (0: skip)"),
    engines: str = typer.Option(",".join(ENGINES), help="which engines, comma-separated"),
    recovery_engines: str = typer.Option(
        "loop,loop-rocksdb", help="which engines run the recovery part"
    ),
) -> None:
    settings = Settings()
    run = uuid.uuid4().hex[:8]
    root = Path(tempfile.mkdtemp(prefix="bench-streams-"))
    if events:
        throughput(settings, run, events, users, engines.split(","), root)
    for i, engine in enumerate(recovery_engines.split(",") if recovery_keys else []):
        # An input topic per engine: the probe adds an event of u0, which must be its second.
        rec = f"bench.{run}.rec{i}"
        asyncio.run(create_topics(settings.kafka_bootstrap, [rec]))
        datadir = str(root / f"{engine}-rec")
        started = time.monotonic()
        group = f"{rec.replace('.', '-')}-{engine}"
        if engine.startswith("loop"):
            asyncio.run(write_loop_changelog(settings.kafka_bootstrap, group, rec, recovery_keys))
        elif engine == "faust":
            asyncio.run(write_faust_changelog(settings.kafka_bootstrap, group, rec, recovery_keys))
        else:
            asyncio.run(produce(settings.kafka_bootstrap, rec, recovery_keys, recovery_keys))
            run_engine(settings, engine, rec, recovery_keys, datadir)
        how = "written directly" if engine in DIRECT else f"built by {engine}"
        built = f"changelog {how} in {time.monotonic() - started:.1f} s"
        restored = recovery(settings, engine, rec, recovery_keys, datadir)
        print(
            f"{engine:12} {recovery_keys:,} keys: {built}; fresh worker restored and "
            f"answered in {restored['restore_and_first_output_s']:.1f} s, "
            f"peak RSS {restored['peak_rss_mb']:,.0f} MiB "
            f"(u0 accepted {restored['accepted']}: 2 means its state was restored)"
        )
    shutil.rmtree(root, ignore_errors=True)


def throughput(
    settings: Settings, run: str, events: int, users: int, engines: list[str], root: Path
) -> None:
    source = f"bench.{run}.in"
    asyncio.run(create_topics(settings.kafka_bootstrap, [source]))
    asyncio.run(produce(settings.kafka_bootstrap, source, events, users))
    print(f"{events} events, {users} users, {PARTITIONS} partitions on {settings.kafka_bootstrap}")
    print("from the worker's start to its last read_committed output:")
    results = {}
    for engine in engines:
        results[engine] = r = run_engine(settings, engine, source, events, str(root / engine))
        print(
            f"{engine:12} first output {r['first_output_s']:5.1f} s | last {r['seconds']:6.1f} s"
            f" | {r['events_per_s']:8,.0f} events/s | {r['cpu_s']:6.1f} CPU-s"
            f" | {r['events_per_cpu_s']:8,.0f} events/CPU-s | peak RSS {r['peak_rss_mb']:5,.0f} MiB"
        )
    pairs = (
        ("loop-rocksdb", "loop"),
        ("loop", "quix-eos"),
        ("loop", "quix"),
        ("faust", "quix"),
    )
    for ours, base in pairs:
        if ours not in results or base not in results:
            continue
        ratio = results[ours]["events_per_s"] / results[base]["events_per_s"]
        cpu = results[ours]["events_per_cpu_s"] / results[base]["events_per_cpu_s"]
        print(f"{ours} / {base}: {ratio:.2f} (events/s), {cpu:.2f} (events per CPU-second)")


if __name__ == "__main__":
    typer.run(main)
