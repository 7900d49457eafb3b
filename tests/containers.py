"""The test services as containers: Kafka and Redis from our images, via testcontainers.

Selected with `TRIBUTARY_TEST_SERVICES=containers` (the default is local processes). The
images come from `tributary images build` (infra/local/images.py) on the test session's own
engine; no registry, and Ryuk is off (its image would need one): the fixture stops what it
started. Ports are bound to the ones the settings name, so every test runs unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network

from infra.local import dockerd, images, kafka, redis
from infra.local.process import wait_until
from tributary.settings import Settings

SELECTED = os.environ.get("TRIBUTARY_TEST_SERVICES", "processes") == "containers"
CLUSTER_ID = "TRIBUTARYtestCLUSTER0w"


def kafka_container(settings: Settings) -> DockerContainer:
    """One KRaft node, listening inside on the host port the settings name, so the address
    it advertises works inside too (a transaction's partition leader calls the coordinator,
    itself, at that address: Kafka's transaction verification)."""
    port = settings.kafka_port
    env = {
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_LISTENERS": f"PLAINTEXT://:{port},CONTROLLER://:9093",
        "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://127.0.0.1:{port}",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
        "KAFKA_NUM_PARTITIONS": str(settings.partitions),
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR": "1",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
        "KAFKA_HEAP_OPTS": f"-Xmx{settings.kafka_heap} -Xms{settings.kafka_heap}",
        "CLUSTER_ID": CLUSTER_ID,
    }
    container = DockerContainer(images.tag("kafka"))
    for name, value in env.items():
        container.with_env(name, value)
    return container.with_bind_ports(port, port)


def redis_container(settings: Settings) -> DockerContainer:
    container = DockerContainer(images.tag("redis"))
    container.with_command("redis-server --protected-mode no --appendonly yes")
    return container.with_bind_ports(6379, settings.redis_port)


@contextmanager
def services(settings: Settings) -> Iterator[list[DockerContainer]]:
    """Kafka and Redis containers up (their images built first, cached), then stopped, and
    the engine too if this started it."""
    ours = dockerd.managed(settings).pid() is None and not dockerd.is_ready(settings)
    print(dockerd.start(settings))
    images.build(settings, ["kafka", "redis"])
    os.environ["DOCKER_HOST"] = settings.docker_dsn
    os.environ["TESTCONTAINERS_RYUK_DISABLED"] = "true"
    started: list[DockerContainer] = []
    # A network of their own: our engine has no default bridge (--bridge=none).
    network = Network().create()
    try:
        for container in (kafka_container(settings), redis_container(settings)):
            started.append(container.with_network(network).start())
        wait_until(lambda: kafka.is_ready(settings), "kafka container", 90)
        wait_until(lambda: redis.is_ready(settings), "redis container", 30)
        print(f"kafka, redis in containers: {settings.kafka_bootstrap}, :{settings.redis_port}")
        yield started
    finally:
        for container in reversed(started):
            container.stop()
        network.remove()
        if ours:
            dockerd.stop(settings)
