"""Apache Kafka as a single-node KRaft broker, from Maven Central jars.

Jars are resolved once with `mvn dependency:copy-dependencies` into the cache dir
(`~/.cache/tributary/kafka-<version>/libs`); later starts only launch the JVM.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import shutil
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from infra.local.process import Managed, ServiceError, family, port_in_use, run_or_fail, wait_until
from schemas.tables import changelog_topics
from schemas.topics import MAX_RECORD_BYTES, REGISTRY
from tributary.kafka_clients import admin_client
from tributary.settings import Settings

READY_MARKER = ".complete"


def jars_dir(settings: Settings) -> Path:
    return settings.cache_dir / f"kafka-{settings.kafka_version}" / "libs"


def ensure_jars(settings: Settings) -> Path:
    """The folder of broker jars, resolving them with Maven the first time."""
    libs = jars_dir(settings)
    if (libs / READY_MARKER).exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ServiceError("Maven (mvn) is not installed: `apt-get install -y maven`.")
    if shutil.which("java") is None:
        raise ServiceError("Java is not installed: `apt-get install -y openjdk-17-jre-headless`.")
    pom = resources.files("infra") / "kafka" / "pom.xml"
    libs.mkdir(parents=True, exist_ok=True)
    with resources.as_file(pom) as pom_path:
        result = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "-f",
                str(pom_path),
                "dependency:copy-dependencies",
                f"-Dkafka.version={settings.kafka_version}",
                f"-DoutputDirectory={libs}",
            ],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
    if result.returncode != 0:
        raise ServiceError(
            f"resolving Kafka {settings.kafka_version} jars with Maven failed:\n"
            f"{result.stdout[-2000:]}{result.stderr[-2000:]}"
        )
    (libs / READY_MARKER).write_text(settings.kafka_version)
    return libs


@dataclass(frozen=True)
class Node:
    """One local KRaft node (controller and broker): its id, ports, and where it lives."""

    id: int
    host: str
    port: int
    controller_port: int
    home: Path

    @property
    def name(self) -> str:
        """Its process name: node 1 is `kafka`, as a single broker always was."""
        return "kafka" if self.id == 1 else f"kafka-{self.id}"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def nodes(settings: Settings) -> list[Node]:
    """The local nodes `settings.kafka_brokers` asks for (see `Settings.kafka_hosts`)."""
    root = settings.data_dir.resolve()
    return [
        Node(
            n,
            settings.kafka_host,
            settings.kafka_port + 2 * (n - 1),
            settings.kafka_controller_port + 2 * (n - 1),
            root / ("kafka" if n == 1 else f"kafka-{n}"),
        )
        for n in range(1, settings.kafka_brokers + 1)
    ]


def server_properties(settings: Settings, node: Node, log_dir: Path) -> str:
    """The config of `node` in a KRaft cluster of `settings.kafka_brokers` nodes, each a
    controller and a broker; internal topics replicated like the registry's."""
    voters = ",".join(f"{n.id}@{n.host}:{n.controller_port}" for n in nodes(settings))
    rf, min_isr = settings.replication_factor, settings.min_insync_replicas
    return "\n".join(
        [
            "process.roles=broker,controller",
            f"node.id={node.id}",
            f"controller.quorum.voters={voters}",
            f"listeners=PLAINTEXT://{node.host}:{node.port},"
            f"CONTROLLER://{node.host}:{node.controller_port}",
            f"advertised.listeners=PLAINTEXT://{node.address}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={log_dir}",
            f"num.partitions={settings.partitions}",
            f"default.replication.factor={rf}",
            f"min.insync.replicas={min_isr}",
            f"offsets.topic.replication.factor={rf}",
            f"transaction.state.log.replication.factor={rf}",
            f"transaction.state.log.min.isr={min_isr}",
            f"share.coordinator.state.topic.replication.factor={rf}",
            f"share.coordinator.state.topic.min.isr={min_isr}",
            "group.initial.rebalance.delay.ms=0",
            # The log cleaner (compacted changelogs) allocates this up front: the default
            # 128 MiB killed a 256 MiB-heap broker with OutOfMemoryError as it restarted.
            "log.cleaner.dedupe.buffer.size=33554432",
            # Topics come from `tributary topics` with their registry config, never by accident.
            "auto.create.topics.enable=false",
            "",
        ]
    )


def managed(settings: Settings, node: Node | None = None) -> Managed:
    return Managed((node or nodes(settings)[0]).name, settings.data_dir.resolve() / "run")


def start(settings: Settings, timeout_s: float = 90.0) -> str:
    """Start every node that does not run; wait until all of them serve metadata. A
    cluster started elsewhere (`kafka_bootstrap_servers`) is only waited for."""
    if settings.kafka_bootstrap_servers:
        wait_until(lambda: is_ready(settings), f"kafka at {settings.kafka_bootstrap}", timeout_s)
        return f"kafka (external) at {settings.kafka_bootstrap}"
    if is_ready(settings):
        return f"kafka already running on {settings.kafka_bootstrap}"
    for node in nodes(settings):
        if managed(settings, node).pid() is None:
            _launch(settings, node)
    procs = [managed(settings, node) for node in nodes(settings)]
    wait_until(lambda: is_ready(settings), "kafka", timeout_s, procs)
    brokers = settings.kafka_brokers
    kind = "KRaft" if brokers == 1 else f"KRaft, {brokers} nodes, RF {settings.replication_factor}"
    return f"kafka {settings.kafka_version} ({kind}) listening on {settings.kafka_bootstrap}"


def start_node(settings: Settings, node: Node, timeout_s: float = 90.0) -> None:
    """Start one node again (after `stop_node`), and wait until every broker is back."""
    if managed(settings, node).pid() is None:
        _launch(settings, node)
    wait_until(lambda: is_ready(settings), node.name, timeout_s, managed(settings, node))


def stop_node(settings: Settings, node: Node, sig: int = signal.SIGTERM) -> bool:
    """Stop one node with `sig` (SIGKILL: no clean shutdown), the others running on."""
    return managed(settings, node).stop(timeout_s=60, sig=sig)


def leader_with_most_partitions(settings: Settings) -> Node:
    """The node that leads the most partitions of `settings.namespace` (a fault's target)."""

    async def leaders() -> Counter[int]:
        async with admin_client(settings.kafka_bootstrap) as admin:
            names = [t for t in await admin.list_topics() if t.startswith(settings.namespace)]
            described = await admin.describe_topics(names)
        return Counter(p["leader"] for t in described for p in t["partitions"])

    counts = asyncio.run(leaders())
    node_id = counts.most_common(1)[0][0]
    print(f"partition leaders per broker: {dict(counts)}; the most: broker {node_id}")
    return next(n for n in nodes(settings) if n.id == node_id)


def _launch(settings: Settings, node: Node) -> None:
    """Format `node`'s storage the first time (one cluster id for all), then start its JVM."""
    for port in (node.port, node.controller_port):
        if port_in_use(node.host, port):
            raise ServiceError(
                f"kafka: port {node.host}:{port} is taken by another process; "
                "stop it or set TRIBUTARY_KAFKA_PORT / TRIBUTARY_KAFKA_CONTROLLER_PORT."
            )
    libs = ensure_jars(settings)
    log_dir = node.home / "data"
    props = node.home / "server.properties"
    node.home.mkdir(parents=True, exist_ok=True)
    props.write_text(server_properties(settings, node, log_dir))
    classpath = f"{libs}/*"
    if not (log_dir / "meta.properties").exists():
        format_storage = ["java", "-cp", classpath, "kafka.tools.StorageTool", "format"]
        run_or_fail(
            [*format_storage, "-t", _cluster_id(settings), "-c", str(props)],
            "kafka storage format",
            120,
        )
    log4j = resources.files("infra") / "kafka" / "log4j2.properties"
    with resources.as_file(log4j) as log4j_path:
        managed(settings, node).start(
            [
                "java",
                f"-Xmx{settings.kafka_heap}",
                f"-Xms{settings.kafka_heap}",
                "-XX:+UseG1GC",
                "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={log4j_path}",
                "-cp",
                classpath,
                "kafka.Kafka",
                str(props),
            ]
        )


def _cluster_id(settings: Settings) -> str:
    """The id every node of this data folder's cluster is formatted with (made once)."""
    path = settings.data_dir.resolve() / "kafka-cluster-id"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(cluster_id())
    return path.read_text().strip()


def cluster_id() -> str:
    """A KRaft cluster id: a base64url UUID, as `kafka-storage random-uuid` prints.

    Never one that starts with '-' (1 in 64 of them would): StorageTool's argument parser
    reads `-t -abc…` as an option and fails with "argument --cluster-id/-t: expected one
    argument". Kafka's own `Uuid.randomUuid()` draws again in that case too.
    """
    while True:
        candidate = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not candidate.startswith("-"):
            return candidate


def is_ready(settings: Settings) -> bool:
    """True if every local broker is up and registered with the cluster (one started
    elsewhere: if it answers)."""
    external = bool(settings.kafka_bootstrap_servers)
    if not external and not all(port_in_use(node.host, node.port) for node in nodes(settings)):
        return False
    try:
        registered = asyncio.run(brokers_registered(settings.kafka_bootstrap))
    except (TimeoutError, KafkaError, OSError):
        return False
    return registered >= (1 if external else settings.kafka_brokers)


async def brokers_registered(bootstrap: str) -> int:
    """How many brokers the cluster's metadata lists (within ~5 s, else `TimeoutError`)."""
    async with admin_client(bootstrap, start_timeout_s=5, request_timeout_ms=3000) as admin:
        cluster = await asyncio.wait_for(admin.describe_cluster(), 5)
    return len(cluster["brokers"])


async def list_topics(bootstrap: str) -> list[str]:
    """The broker's topic names (within ~5 s, else `TimeoutError`)."""
    async with admin_client(bootstrap, start_timeout_s=5, request_timeout_ms=3000) as admin:
        return list(await asyncio.wait_for(admin.list_topics(), 5))


def ensure_topics(settings: Settings) -> list[str]:
    """Create every registry topic missing on the broker; return the physical names."""
    return asyncio.run(_ensure_topics(settings))


async def _brokers_registered(admin: AIOKafkaAdminClient, count: int, timeout_s: float) -> None:
    """Wait until `count` brokers are in the cluster: a topic with that many replicas cannot
    be made before (compose starts `tributary topics` once the brokers accept connections,
    which can be before all of them have joined)."""
    deadline = time.monotonic() + timeout_s
    while True:
        brokers = (await admin.describe_cluster())["brokers"]
        if len(brokers) >= count:
            return
        if time.monotonic() > deadline:
            raise ServiceError(f"{len(brokers)} of {count} brokers joined in {timeout_s:.0f}s")
        await asyncio.sleep(0.5)


async def _ensure_topics(settings: Settings) -> list[str]:
    async with admin_client(settings.kafka_bootstrap) as admin:
        await _brokers_registered(admin, settings.replication_factor, timeout_s=120)
        existing = set(await admin.list_topics())
        replicated = {"min.insync.replicas": str(settings.min_insync_replicas)}
        registry = {
            spec.physical(settings.namespace): {**spec.config(), **replicated} for spec in REGISTRY
        }
        topics = dict(registry)
        for name, config in changelog_topics(settings.namespace, settings.dedup_ttl_s).items():
            topics[name] = {**config, **replicated}
        wanted = [
            NewTopic(name, settings.partitions, settings.replication_factor, topic_configs=config)
            for name, config in topics.items()
            if name not in existing
        ]
        if wanted:
            # A concurrent `tributary up` may have made them; that is the goal too.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(wanted)
            await _visible(admin, set(topics), timeout_s=30)
        # All of them: one made by a concurrent start may not have been listed yet.
        await _raise_record_limits(admin, registry)
        return list(registry)


async def _raise_record_limits(
    admin: AIOKafkaAdminClient, topics: dict[str, dict[str, str]]
) -> list[str]:
    """Give registry topics made before their config had `max.message.bytes` the registry's
    config (the broker's default, ~1 MiB, is less than a 1 MiB body plus its headers); return
    their names. Topics already at `MAX_RECORD_BYTES` or above are left as they are."""
    if not topics:
        return []
    wanted = {"max.message.bytes": None}
    [described] = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name, wanted) for name in topics]
    )
    low = [
        name
        for _, _, _, name, entries in described.resources
        if any(e[0] == "max.message.bytes" and int(e[1]) < MAX_RECORD_BYTES for e in entries)
    ]
    if low:
        # AlterConfigs sets a topic's whole config: the registry's is all of it.
        responses = await admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name, topics[name]) for name in low]
        )
        failed = [r for response in responses for r in response.resources if r[0]]
        if failed:
            raise RuntimeError(f"could not raise max.message.bytes: {failed}")
    return low


def delete_namespaces(settings: Settings, namespaces: Iterable[str]) -> list[str]:
    """Delete every topic named `<namespace>.…` or `<namespace>-…` (the changelogs) for each
    of `namespaces`; return their names. A namespace `<namespace>-x` goes with it: meant for
    test namespaces (random, with their derived ones), not a shared broker's. Test sessions
    clean up with it: a reused broker that keeps every session's partitions starts slower
    each time (12,000 partitions here took it past 90 s)."""
    return asyncio.run(_delete_namespaces(settings.kafka_bootstrap, tuple(namespaces)))


async def _delete_namespaces(bootstrap: str, namespaces: tuple[str, ...]) -> list[str]:
    prefixes = tuple(f"{ns}{sep}" for ns in namespaces for sep in ".-")
    async with admin_client(bootstrap) as admin:
        doomed = sorted(t for t in await admin.list_topics() if t.startswith(prefixes))
        if doomed:
            await admin.delete_topics(doomed, timeout_ms=60_000)
        return doomed


async def _visible(admin: AIOKafkaAdminClient, names: set[str], timeout_s: float) -> None:
    """Wait until the broker's metadata lists every topic in `names`.

    CreateTopics returns once the KRaft controller has the topics, before the broker's
    metadata cache does. A worker started in between sees "missing" topics and gets no
    partitions for them until its next metadata refresh (minutes), so wait here.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        missing = names - set(await admin.list_topics())
        if not missing:
            return
        if time.monotonic() > deadline:
            raise ServiceError(f"topics not visible after {timeout_s:.0f}s: {sorted(missing)}")
        await asyncio.sleep(0.1)


def stop(settings: Settings) -> bool:
    """Stop every node of the data folder (also those of a larger cluster than `settings`
    names now); True if any was running."""
    return any([proc.stop(timeout_s=30) for proc in family(settings.data_dir / "run", "kafka")])
