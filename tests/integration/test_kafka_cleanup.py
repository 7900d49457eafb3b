"""A test session deletes its namespaces' topics (`infra.local.kafka.delete_namespaces`)."""

from __future__ import annotations

import asyncio
import time

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
