"""Apache Kafka as a single-node KRaft broker, from Maven Central jars.

Jars are resolved once with `mvn dependency:copy-dependencies` into the cache dir
(`~/.cache/tributary/kafka-<version>/libs`); later starts only launch the JVM.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from infra.local.process import Managed, ServiceError, port_in_use, wait_until
from schemas.topics import MAX_RECORD_BYTES, REGISTRY
from streams.tables import changelog_topics
from tributary.kafka_admin import admin_client
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


def server_properties(settings: Settings, log_dir: Path) -> str:
    """The broker+controller config of a single-node KRaft cluster."""
    host, port, cport = settings.kafka_host, settings.kafka_port, settings.kafka_controller_port
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@{host}:{cport}",
            f"listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{cport}",
            f"advertised.listeners=PLAINTEXT://{host}:{port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={log_dir}",
            f"num.partitions={settings.partitions}",
            # Single node: every internal topic has one replica.
            "offsets.topic.replication.factor=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            # Topics come from `tributary topics` with their registry config, never by accident.
            "auto.create.topics.enable=false",
            "",
        ]
    )


def managed(settings: Settings) -> Managed:
    return Managed("kafka", settings.data_dir.resolve() / "run")


def start(settings: Settings, timeout_s: float = 90.0) -> str:
    """Start the broker unless it runs; wait until it answers metadata requests."""
    proc = managed(settings)
    if proc.pid() is not None:
        wait_until(lambda: is_ready(settings), "kafka", timeout_s, proc)
        return f"kafka already running (pid {proc.pid()}) on {settings.kafka_bootstrap}"
    if is_ready(settings):
        return f"kafka already running (not ours) on {settings.kafka_bootstrap}; reusing it"
    for port in (settings.kafka_port, settings.kafka_controller_port):
        if port_in_use(settings.kafka_host, port):
            raise ServiceError(
                f"kafka: port {settings.kafka_host}:{port} is taken by another process; "
                "stop it or set TRIBUTARY_KAFKA_PORT / TRIBUTARY_KAFKA_CONTROLLER_PORT."
            )
    libs = ensure_jars(settings)
    home = settings.data_dir.resolve() / "kafka"
    log_dir = home / "data"
    props = home / "server.properties"
    home.mkdir(parents=True, exist_ok=True)
    props.write_text(server_properties(settings, log_dir))
    classpath = f"{libs}/*"
    if not (log_dir / "meta.properties").exists():
        result = subprocess.run(
            [
                "java",
                "-cp",
                classpath,
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_id(),
                "-c",
                str(props),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise ServiceError(f"kafka storage format failed:\n{result.stdout}{result.stderr}")
    log4j = resources.files("infra") / "kafka" / "log4j2.properties"
    with resources.as_file(log4j) as log4j_path:
        proc.start(
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
    wait_until(lambda: is_ready(settings), "kafka", timeout_s, proc)
    return f"kafka {settings.kafka_version} (KRaft) listening on {settings.kafka_bootstrap}"


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
    """True if the broker answers a metadata request."""
    if not port_in_use(settings.kafka_host, settings.kafka_port):
        return False
    try:
        asyncio.run(list_topics(settings.kafka_bootstrap))
    except (TimeoutError, KafkaError, OSError):
        return False
    return True


async def list_topics(bootstrap: str) -> list[str]:
    """The broker's topic names (within ~5 s, else `TimeoutError`)."""
    async with admin_client(bootstrap, start_timeout_s=5, request_timeout_ms=3000) as admin:
        return list(await asyncio.wait_for(admin.list_topics(), 5))


def ensure_topics(settings: Settings) -> list[str]:
    """Create every registry topic missing on the broker; return the physical names."""
    return asyncio.run(_ensure_topics(settings))


async def _ensure_topics(settings: Settings) -> list[str]:
    async with admin_client(settings.kafka_bootstrap) as admin:
        existing = set(await admin.list_topics())
        topics = {spec.physical(settings.namespace): spec.config() for spec in REGISTRY}
        topics.update(changelog_topics(settings.namespace, settings.dedup_ttl_s))
        wanted = [
            NewTopic(name, settings.partitions, 1, topic_configs=config)
            for name, config in topics.items()
            if name not in existing
        ]
        if wanted:
            # A concurrent `tributary up` may have made them; that is the goal too.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(wanted)
            await _visible(admin, set(topics), timeout_s=30)
        registry = {spec.physical(settings.namespace): spec.config() for spec in REGISTRY}
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
    return managed(settings).stop(timeout_s=30)
