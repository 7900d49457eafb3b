"""Tributary on a local cluster (issue #25): three KRaft brokers with every topic replicated
three times, two gateways behind haproxy, two workers, under a steady HTTP load.

Brokers and workers are killed and restarted under the load; every event answered 202 must
be in ClickHouse exactly once, each user's `seq` gap-free and in the order the user sent.
The client is a polite one: it sends a user's next event only after the previous one's
202, and retries an event (same id) after a 503 or a dropped connection. The longer runs
are `bench/cluster.py`'s.
"""

from __future__ import annotations

import asyncio
import signal
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import httpx
import orjson
import pytest
import websockets
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from cli.demo import api_keys
from infra.local import haproxy, kafka, stack
from schemas import topics
from tests.conftest import PORT_OFFSET, TEST_DATA, make_settings
from tests.integration.load_helpers import Load, check_exactly_once_in_order
from tributary.kafka_clients import admin_client
from tributary.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster(redis_cluster_node: Settings) -> Iterator[Settings]:
    """3 brokers (own ports and data folder), 2 gateways behind haproxy, 2 workers, the
    projector, on the session's local Redis Cluster (API keys, limits, push, job status)."""
    # Below the ephemeral range: worker 2 listens on worker_web_port + 1 and the gateways
    # on gateway_port + 1 and + 2, ports nobody checked were free (a client's connection
    # once held worker 2's, and the cluster never came up).
    base = 28080 + PORT_OFFSET
    settings = make_settings(
        data_dir=TEST_DATA / "cluster",
        kafka_port=29092 + PORT_OFFSET,
        kafka_controller_port=29093 + PORT_OFFSET,
        kafka_brokers=3,
        kafka_heap="256m",
        redis_port=redis_cluster_node.redis_port,
        redis_cluster=True,
        gateways=2,
        workers=2,
        gateway_port=base,
        worker_web_port=26066 + PORT_OFFSET,
        worker_session_timeout_s=6.0,
    )
    started = time.monotonic()
    try:
        stack.up(settings, jobs=False)
        print(f"cluster up in {time.monotonic() - started:.1f} s")
        yield settings
    finally:
        try:
            kafka.delete_namespaces(settings, [settings.namespace])
        except Exception as exc:  # a broker gone at teardown must not fail the run
            print(f"could not delete the cluster's topics: {exc!r}")
        stack.down(settings)


def refusal_window(load: Load, since: float) -> str:
    after = [t for t, _ in load.refused if t >= since]
    if not after:
        return "no refusals"
    kinds = Counter(what for t, what in load.refused if t >= since)
    return f"{len(after)} refusals over {after[-1] - after[0]:.1f} s {dict(kinds)}"


def test_a_broker_and_a_worker_killed_under_load_lose_and_double_nothing(
    cluster: Settings,
) -> None:
    load = Load(cluster).start()
    time.sleep(5)
    broker = kafka.leader_with_most_partitions(cluster)
    killed_broker = time.monotonic()
    kafka.stop_node(cluster, broker, signal.SIGKILL)
    time.sleep(10)
    worker_app, worker_settings = next(
        (a, s) for a, s in stack.replicas(cluster) if a.name == "worker-2"
    )
    stack.managed(worker_settings, worker_app).stop(sig=signal.SIGKILL)
    time.sleep(10)
    kafka.start_node(cluster, broker)
    stack.start_app(worker_settings, worker_app)
    time.sleep(5)
    load.finish()
    total = sum(load.accepted.values())
    print(
        f"{total} events accepted through haproxy; after the broker's SIGKILL: "
        f"{refusal_window(load, killed_broker)}"
    )
    assert total > 1000
    assert all(what in ("503", "ReadTimeout", "ConnectError") for _, what in load.refused)
    check_exactly_once_in_order(cluster, load)


def test_a_rolling_restart_of_every_broker_loses_and_doubles_nothing(cluster: Settings) -> None:
    load = Load(cluster).start()
    time.sleep(3)
    for node in kafka.nodes(cluster):
        began = time.monotonic()
        kafka.stop_node(cluster, node, signal.SIGTERM)
        time.sleep(3)
        kafka.start_node(cluster, node)
        print(f"broker {node.id} restarted in {time.monotonic() - began:.1f} s")
        time.sleep(3)
    load.finish()
    print(f"{sum(load.accepted.values())} events accepted; {refusal_window(load, 0)}")
    check_exactly_once_in_order(cluster, load)


def test_a_websocket_on_one_gateway_sees_what_the_other_accepted(cluster: Settings) -> None:
    first, second = (f"http://127.0.0.1:{port}" for port in haproxy.gateway_ports(cluster))
    user = f"ws-{uuid.uuid4().hex[:8]}"
    key = asyncio.run(api_keys(cluster, [user]))[user]

    def send(gateway: str, n: int) -> None:
        body = {"source": "ws", "type": "t.n", "data": {"n": n}}
        response = httpx.post(f"{gateway}/v1/events", json=body, headers={"x-api-key": key})
        assert response.status_code == 202, response.text

    async def read(gateway: str, since: int, count: int) -> list[int]:
        url = gateway.replace("http://", "ws://") + f"/v1/ws?since={since}&api_key={key}"
        seen: list[int] = []
        async with websockets.connect(url) as ws:
            while len(seen) < count:
                message = orjson.loads(await asyncio.wait_for(ws.recv(), 30))
                if "control" not in message:  # the resume message comes first
                    seen.append(message["data"]["n"])
        return seen

    async def live_then_resume() -> tuple[list[int], list[int]]:
        listening = asyncio.create_task(read(first, 0, 10))
        await asyncio.sleep(1)
        for n in range(10):
            await asyncio.to_thread(send, second, n)
        live = await listening
        # Disconnected: five more go in through the first gateway, then resume on the second.
        for n in range(10, 15):
            await asyncio.to_thread(send, first, n)
        return live, await read(second, 10, 5)

    live, resumed = asyncio.run(live_then_resume())
    assert live == list(range(10))
    assert resumed == list(range(10, 15))


def test_the_balancer_spreads_requests_over_both_gateways(cluster: Settings) -> None:
    def accepted_by(port: int) -> float:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("tributary_gateway_events_accepted_total{")
        )

    ports = haproxy.gateway_ports(cluster)
    before = [accepted_by(p) for p in ports]
    load = Load(cluster).start()
    time.sleep(4)
    load.finish()
    gained = [accepted_by(p) - b for p, b in zip(ports, before, strict=True)]
    print(f"events accepted per gateway: {gained}")
    assert min(gained) > 0.2 * statistics.fmean(gained)


def test_topics_are_replicated_three_times_with_two_in_sync_required(cluster: Settings) -> None:
    async def described() -> tuple[list[dict], list]:  # type: ignore[type-arg]
        async with admin_client(cluster.kafka_bootstrap) as admin:
            name = topics.INGEST.physical(cluster.namespace)
            return await admin.describe_topics([name]), await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, name, {"min.insync.replicas": None})]
            )

    [topic], [configs] = asyncio.run(described())
    assert {len(p["replicas"]) for p in topic["partitions"]} == {3}
    [(_, _, _, _, entries)] = configs.resources
    assert ("min.insync.replicas", "2") in [(e[0], e[1]) for e in entries]


def test_a_draining_gateway_leaves_the_balancer_before_it_stops(cluster: Settings) -> None:
    """SIGTERM to gateway 1 under load: it answers readiness 503 first (gateway/drain.py),
    haproxy's checks (1 s, fall 2) take it out, and it stops listening only after the drain
    (5 s): from 3 s after the signal on, every request is served by gateway 2."""
    first_app, first = next((a, s) for a, s in stack.replicas(cluster) if a.name == "gateway-1")
    load = Load(cluster).start()
    time.sleep(3)
    signalled = time.monotonic()
    stack.managed(first, first_app).stop(timeout_s=40, sig=signal.SIGTERM)
    stopped = time.monotonic() - signalled
    time.sleep(3)
    load.finish()
    late = [(round(t - signalled, 2), what) for t, what in load.refused if t > signalled + 3]
    print(
        f"gateway-1 exited {stopped:.1f} s after SIGTERM; "
        f"{refusal_window(load, signalled)}; after 3 s: {late}"
    )
    assert stopped >= cluster.shutdown_drain_s
    assert late == []
    check_exactly_once_in_order(cluster, load)
    stack.start_app(first, first_app)  # back in rotation for whatever runs next
