"""`tributary tail` against a real broker: filters, starts, read_committed, and no group."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from typer.testing import CliRunner

from cli.main import cli
from schemas.envelope import CloudEvent, to_kafka
from schemas.topics import INGEST
from tests.integration.kafka_helpers import produce_events
from tributary.kafka_clients import admin_client, started
from tributary.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def produced(services: Settings) -> Iterator[tuple[Settings, str]]:
    """30 events for three users of this run, plus one aborted transaction for user 0."""
    run = f"tail-{uuid.uuid4().hex[:6]}"
    topic = INGEST.physical(services.namespace)
    asyncio.run(produce_events(services.kafka_bootstrap, topic, 30, 3, run))

    async def aborted() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=services.kafka_bootstrap, transactional_id=f"{run}-aborted"
        )
        async with started(producer):
            await producer.begin_transaction()
            event = CloudEvent(source="tests", type="test.aborted", subject=f"{run}-u0")
            key, value, headers = to_kafka(event)
            await producer.send_and_wait(topic, value, key=key, headers=headers)
            await producer.abort_transaction()

    asyncio.run(aborted())
    yield services, run


def tail(settings: Settings, *args: str) -> list[str]:
    env = {
        "TRIBUTARY_NAMESPACE": settings.namespace,
        "TRIBUTARY_KAFKA_PORT": str(settings.kafka_port),
    }
    result = CliRunner().invoke(cli, ["tail", *args], env=env)
    assert result.exit_code == 0, result.output
    return [line for line in result.stdout.splitlines() if line]


def test_tail_prints_one_users_records_in_order_as_json(produced: tuple[Settings, str]) -> None:
    settings, run = produced
    lines = tail(settings, "events.ingest", "--user", f"{run}-u1", "--from-beginning", "--json")
    records = [orjson.loads(line) for line in lines]
    assert [r["data"]["n"] for r in records] == list(range(10))
    assert {(r["key"], r["subject"], r["type"], r["specversion"]) for r in records} == {
        (f"{run}-u1", f"{run}-u1", "test.event", "1.0")
    }
    offsets = [r["offset"] for r in records]
    assert offsets == sorted(offsets) and len({r["partition"] for r in records}) == 1


def test_tail_reads_committed_records_only(produced: tuple[Settings, str]) -> None:
    settings, run = produced
    lines = tail(settings, "events.ingest", "--user", f"{run}-u0", "--from-beginning", "--json")
    types = [orjson.loads(line)["type"] for line in lines]
    assert types == ["test.event"] * 10  # the aborted test.aborted is not shown


def test_tail_filters_by_type_glob_and_starts_at_a_time(produced: tuple[Settings, str]) -> None:
    settings, run = produced
    user = f"{run}-u2"
    assert tail(
        settings, "events.ingest", "--user", user, "--type", "test.*", "--since", "1h", "--json"
    )
    assert (
        tail(settings, "events.ingest", "--user", user, "--type", "other.*", "--since", "1h") == []
    )
    future = "2999-01-01T00:00:00+00:00"
    assert tail(settings, "events.ingest", "--user", user, "--since", future, "--json") == []


def test_tail_pretty_prints_where_who_and_what(produced: tuple[Settings, str]) -> None:
    settings, run = produced
    lines = tail(settings, "events.ingest", "--user", f"{run}-u1", "--from-beginning")
    heads = [line for line in lines if line.startswith(INGEST.physical(settings.namespace))]
    assert len(heads) == 10
    assert f"{run}-u1" in heads[0] and "test.event" in heads[0] and "id=" in heads[0]
    assert '{"n":0}' in "\n".join(lines)


def test_tail_joins_no_consumer_group(produced: tuple[Settings, str]) -> None:
    settings, _ = produced

    async def groups() -> set[str]:
        async with admin_client(settings.kafka_bootstrap) as admin:
            return {g[0] for g in await admin.list_consumer_groups()}

    before = asyncio.run(groups())
    tail(settings, "events.ingest", "--from-beginning", "--json")
    assert asyncio.run(groups()) - before == set()


def test_tail_refuses_a_bad_start() -> None:
    result = CliRunner().invoke(cli, ["tail", "events.ingest", "--since", "yesterday"])
    assert result.exit_code == 2 and "expected 30s, 10m, 2h, 1d" in result.output
