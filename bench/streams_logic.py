"""The agent logic both stream engines run in `bench.streams`: a limit check and a state update.

Per event (keyed by user): the user's GCRA windows decide in event time (the same
`tributary.limits.decide` the command agent uses), the user's state (TATs, counters)
is updated, and one result is emitted. Each engine runs it in its own process:

    python -m bench.streams_logic faust     BOOTSTRAP IN OUT GROUP DATADIR
    python -m bench.streams_logic quix      BOOTSTRAP IN OUT GROUP DATADIR
    python -m bench.streams_logic quix-eos  BOOTSTRAP IN OUT GROUP DATADIR
    python -m bench.streams_logic loop      BOOTSTRAP IN OUT GROUP DATADIR
    python -m bench.streams_logic loop-rocksdb BOOTSTRAP IN OUT GROUP DATADIR

`loop` is Tributary's transactional loop (`streams.runtime.transactional`, exactly-once: one
transaction per partition per batch), its tables in memory (`loop`) or in RocksDB
(`loop-rocksdb`); `quix-eos` is Quix Streams with exactly-once.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from tributary.limits import decide, parse_windows

WINDOWS = parse_windows("50/s,1000/m")
NO_TABLE = os.environ.get("BENCH_FAUST_NO_TABLE") == "1"


def step(state: dict[str, Any] | None, ts_ms: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(new state, result) for one event of a user at event time `ts_ms` (pure)."""
    state = state or {"tats": [None] * len(WINDOWS), "accepted": 0, "refused": 0}
    decision, tats = decide(state["tats"], WINDOWS, ts_ms)
    key = "accepted" if decision.allowed else "refused"
    new = {**state, "tats": tats, key: state[key] + 1}
    return new, {"allowed": decision.allowed, "accepted": new["accepted"]}


def run_faust(bootstrap: str, source: str, sink: str, group: str, datadir: str) -> None:
    import faust
    import orjson

    raw: dict[str, Any] = {
        "key_type": bytes,
        "value_type": bytes,
        "key_serializer": "raw",
        "value_serializer": "raw",
    }
    app = faust.App(
        group,
        broker=f"kafka://{bootstrap}",
        store="rocksdb://",
        datadir=datadir,
        processing_guarantee="at_least_once",
        topic_partitions=6,
        web_enabled=False,
        **orjson.loads(os.environ.get("BENCH_FAUST_OPTIONS", "{}")),
    )
    inbound = app.topic(source, **raw)
    outbound = app.topic(sink, **raw)
    table = app.Table("limits", default=dict, partitions=6, key_type=str)

    @app.agent(inbound)
    async def limit(stream: Any) -> None:
        async for event in stream.events():
            user = event.key.decode()
            if NO_TABLE:  # diagnosis only: the same stream without the table
                _, result = step(None, int(event.message.timestamp * 1000))
            else:
                new, result = step(table[user] or None, int(event.message.timestamp * 1000))
                table[user] = new
            await outbound.send(key=event.key, value=orjson.dumps(result))

    sys.argv = [sys.argv[0], "worker", os.environ.get("BENCH_FAUST_LOGLEVEL", "--loglevel=warn")]
    app.main()


def run_quix(
    bootstrap: str,
    source: str,
    sink: str,
    group: str,
    datadir: str,
    guarantee: str = "at-least-once",
) -> None:
    from quixstreams import Application, State

    app = Application(
        broker_address=bootstrap,
        consumer_group=group,
        auto_offset_reset="earliest",
        processing_guarantee=guarantee,  # type: ignore[arg-type]
        state_dir=datadir,
        loglevel="WARNING",
    )
    inbound = app.topic(source, value_deserializer="bytes", key_deserializer="bytes")
    outbound = app.topic(sink, value_serializer="json", key_serializer="bytes")

    def apply(value: bytes, key: bytes, ts_ms: int, headers: Any, state: State) -> Any:
        new, result = step(state.get("s"), ts_ms)
        state.set("s", new)
        return result

    sdf = app.dataframe(inbound)
    sdf = sdf.apply(apply, stateful=True, metadata=True)
    sdf.to_topic(outbound)
    app.run()


def run_quix_eos(bootstrap: str, source: str, sink: str, group: str, datadir: str) -> None:
    run_quix(bootstrap, source, sink, group, datadir, "exactly-once")


class LimitProcessor:
    """`step` as a transactional-loop processor: one table, one output per event."""

    name = "limits"
    tables: tuple[str, ...] = ("limits",)

    def __init__(self, source: str, sink: str) -> None:
        self.source, self.sink, self.dlq = source, sink, f"{sink}.dlq"

    def process(self, record: Any, tables: Any) -> list[Any]:
        import orjson

        from streams.runtime.outputs import Output

        user = record.key.decode()
        table = tables["limits"]
        new, result = step(table.get(user), record.timestamp)
        table[user] = new
        return [Output(self.sink, orjson.dumps(result), record.key)]

    def tidy(self, tables: Any, now_ms: int) -> None:
        pass


def run_loop(
    bootstrap: str, source: str, sink: str, group: str, datadir: str, backend: str = "memory"
) -> None:
    import asyncio
    from pathlib import Path

    from streams.runtime.transactional import TransactionalLoop
    from tributary.settings import Settings

    host, port = bootstrap.rsplit(":", 1)
    settings = Settings(
        namespace=group,
        kafka_host=host,
        kafka_port=int(port),
        data_dir=Path(datadir),
        state_backend=backend,  # type: ignore[arg-type]
    )
    # Its group is `<group>-streams-limits`, its changelog `<group>-streams-limits-changelog`.
    loop = TransactionalLoop(
        settings, LimitProcessor(source, sink), group=f"{group}-streams-limits"
    )
    asyncio.run(loop.run(asyncio.Event()))


def run_loop_rocksdb(bootstrap: str, source: str, sink: str, group: str, datadir: str) -> None:
    run_loop(bootstrap, source, sink, group, datadir, "rocksdb")


if __name__ == "__main__":
    engine, *args = sys.argv[1:]
    engines = {
        "faust": run_faust,
        "quix": run_quix,
        "quix-eos": run_quix_eos,
        "loop": run_loop,
        "loop-rocksdb": run_loop_rocksdb,
    }
    engines[engine](*args)
