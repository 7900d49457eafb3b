"""The gateway's one push reader on a real Redis and a real Redis Cluster: many streams,
one Pub/Sub connection and a bounded pool, every entry to every subscriber in order."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from gateway.push_hub import PushHub, Subscriber
from projections.push_notices import notify
from schemas import keys
from schemas.push import CLOSE_SLOW, STREAM_FIELD
from tributary import redis_client
from tributary.settings import Settings

pytestmark = pytest.mark.integration


async def append(
    settings: Settings, client: object, stream: str, seqs: range, size: int = 8
) -> None:
    pipe = client.pipeline(transaction=False)  # type: ignore[attr-defined]
    for seq in seqs:
        pipe.xadd(stream, {STREAM_FIELD: b"x" * size + str(seq).encode()}, id=f"{seq}-0")
    await pipe.execute()
    await notify(client, settings.namespace, {stream})  # type: ignore[arg-type]


async def connections_of(client: object, name: str) -> int:
    """Connections Redis (every node of a cluster) has open under the client name `name`."""
    listed = await client.client_list()  # type: ignore[attr-defined]
    if isinstance(listed, dict):  # a cluster: per node
        listed = [c for clients in listed.values() for c in clients]
    return sum(1 for c in listed if c.get("name") == name)


def test_one_reader_follows_many_streams_with_a_fixed_number_of_connections(
    redis_settings: Settings,
) -> None:
    settings = redis_settings.model_copy(update={"namespace": f"t{uuid.uuid4().hex[:10]}"})

    async def scenario() -> tuple[dict[str, list[int]], int, int]:
        writer = redis_client.connect(settings)
        name = f"hub-{uuid.uuid4().hex[:6]}"
        reader = redis_client.connect(settings, name=name)
        hub = PushHub(reader, settings.namespace, concurrency=4, buffer=1024 * 1024)
        hub.start()
        users = [f"u{i}" for i in range(300)]
        streams = [keys.push_stream(settings.namespace, u) for u in users]
        for stream in streams[:3]:  # some history before anyone subscribes
            await append(settings, writer, stream, range(7, 10))
        subscribers: list[Subscriber] = [await hub.subscribe(s) for s in streams]
        await asyncio.sleep(0.3)  # the notice subscription is up
        few = await connections_of(writer, name)
        for stream in streams:
            await append(settings, writer, stream, range(10, 13))
        got: dict[str, list[int]] = {s: [] for s in streams}
        async with asyncio.timeout(20):
            for subscriber in subscribers:
                while len(got[subscriber.key]) < 3:
                    assert subscriber.closing is None, subscriber.closing
                    for entry_id, *_ in await subscriber.take():
                        got[subscriber.key].append(entry_id[0])
        many = await connections_of(writer, name)
        await hub.stop()
        await reader.aclose()
        await writer.aclose()
        return got, few, many

    got, few, many = asyncio.run(scenario())
    # Only what came after subscribing, each once, in order, for every stream.
    assert all(seqs == [10, 11, 12] for seqs in got.values()), got
    # One Pub/Sub connection plus at most `concurrency` for reads (per node of a cluster).
    assert 1 <= many <= 1 + 4 * 3, many
    print(f"hub connections: {few} with 300 subscribers idle, {many} after a round of 900 entries")


def test_a_subscriber_past_its_buffer_is_closed_and_its_queue_dropped(
    services: Settings,
) -> None:
    settings = services.model_copy(update={"namespace": f"t{uuid.uuid4().hex[:10]}"})

    async def scenario() -> tuple[Subscriber, Subscriber, int]:
        client = redis_client.connect(settings)
        hub = PushHub(client, settings.namespace, concurrency=2, buffer=64 * 1024)
        hub.start()
        stream = keys.push_stream(settings.namespace, "slow")
        slow, quick = await hub.subscribe(stream), await hub.subscribe(stream)
        await asyncio.sleep(0.3)
        taken = 0
        for start in range(1, 201, 20):  # 200 entries of 1 KiB; `quick` keeps reading
            await append(settings, client, stream, range(start, start + 20), size=1024)
            async with asyncio.timeout(10):
                while taken < start + 19:
                    taken += len(await quick.take())
        await hub.stop()
        await client.aclose()
        return slow, quick, taken

    slow, quick, taken = asyncio.run(scenario())
    assert slow.closing is not None and slow.closing[0] == CLOSE_SLOW
    assert slow.queued_bytes == 0 and not slow.queue
    assert quick.closing is None and taken == 200


def test_a_reader_that_finds_seqs_trimmed_away_closes_its_sockets(services: Settings) -> None:
    """A user's stream trimmed past where the reader was (its sockets would skip seqs):
    they are closed so that their clients resume and hear what is missing."""
    settings = services.model_copy(update={"namespace": f"t{uuid.uuid4().hex[:10]}"})

    async def scenario() -> Subscriber:
        client = redis_client.connect(settings)
        hub = PushHub(client, settings.namespace, concurrency=2, buffer=1024 * 1024)
        hub.start()
        stream = keys.push_stream(settings.namespace, "behind")
        await append(settings, client, stream, range(1, 4))
        subscriber = await hub.subscribe(stream)  # the reader is at seq 3
        await asyncio.sleep(0.3)
        await append(settings, client, stream, range(10, 12))  # 4..9 never seen
        async with asyncio.timeout(10):
            await subscriber.take()
        await hub.stop()
        await client.aclose()
        return subscriber

    subscriber = asyncio.run(scenario())
    assert subscriber.closing is not None and subscriber.closing[0] == CLOSE_SLOW
