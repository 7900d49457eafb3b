"""A test session deletes its namespaces' topics (`infra.local.kafka.delete_namespaces`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from infra.local import kafka
from tests.conftest import make_settings
from tributary.settings import Settings


def _topics(settings: Settings) -> set[str]:
    return set(asyncio.run(kafka.list_topics(settings.kafka_bootstrap)))


def test_deleting_a_namespace_removes_its_topics_and_no_others(services: Settings) -> None:
    doomed, kept = make_settings(), make_settings()
    # Another namespace whose name starts with the doomed one's: not to be touched.
    lookalike = make_settings(namespace=f"{doomed.namespace}x")
    for settings in (doomed, kept, lookalike):
        kafka.ensure_topics(settings)

    deleted = kafka.delete_namespaces(services, [doomed.namespace])

    assert deleted and all(
        name.startswith((f"{doomed.namespace}.", f"{doomed.namespace}-")) for name in deleted
    )
    deadline = time.monotonic() + 30
    while (left := {t for t in _topics(services) if t in deleted}) and time.monotonic() < deadline:
        time.sleep(0.2)  # the broker's metadata catches up with the controller
    assert not left
    remaining = _topics(services)
    for settings in (kept, lookalike):
        assert set(kafka.ensure_topics(settings)) <= remaining


def test_an_older_stacks_topics_get_the_registrys_record_limit(services: Settings) -> None:
    """Topics made with the broker's ~1 MiB `max.message.bytes` (before the registry set
    it) are raised to `MAX_RECORD_BYTES` by the next `ensure_topics`, keeping the rest of
    their registry config."""
    from aiokafka.admin import NewTopic
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    from schemas.topics import INGEST, MAX_RECORD_BYTES
    from tributary.kafka_clients import admin_client

    old = make_settings()
    topic = INGEST.physical(old.namespace)
    old_config = {k: v for k, v in INGEST.config().items() if k != "max.message.bytes"}

    async def create() -> None:
        async with admin_client(old.kafka_bootstrap) as admin:
            await admin.create_topics(
                [NewTopic(topic, old.partitions, 1, topic_configs=old_config)]
            )

    async def config() -> dict[str, str]:
        async with admin_client(old.kafka_bootstrap) as admin:
            [described] = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, topic, dict.fromkeys(INGEST.config()))]
            )
        [(_, _, _, _, entries)] = described.resources
        return {e[0]: e[1] for e in entries}

    def shown(done: Callable[[dict[str, str]], bool]) -> dict[str, str]:
        """The topic's config once `done` says so (a new topic, or a change, takes a moment
        to reach the broker's metadata), or as it is after 20 s."""
        deadline = time.monotonic() + 20
        while not done(seen := asyncio.run(config())) and time.monotonic() < deadline:
            time.sleep(0.2)
        return seen

    asyncio.run(create())
    before = shown(lambda c: "max.message.bytes" in c)
    assert int(before["max.message.bytes"]) < MAX_RECORD_BYTES
    kafka.ensure_topics(old)
    after = shown(lambda c: c == INGEST.config())
    assert after == INGEST.config()
