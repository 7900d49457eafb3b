"""A record no agent can process lands in the DLQ once, with its reason; the CLI operates on it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from typer.testing import CliRunner

from cli.demo import query
from cli.main import cli
from infra.local import kafka, stack
from schemas.envelope import CloudEvent, from_kafka, header_value, to_kafka
from schemas.topics import COMMANDS, COUNTED, INGEST, MAX_RECORD_BYTES
from streams import dlq_admin
from streams.jobs.commands import JOB_DUE
from tests.conftest import make_settings
from tests.integration.kafka_helpers import read_until
from tributary import settings as settings_module
from tributary.settings import Settings

pytestmark = pytest.mark.integration

WORKER = next(a for a in stack.APPS if a.name == "worker")
PROJECTOR = next(a for a in stack.APPS if a.name == "projector")


def letters_when(settings: Settings, count: int, timeout_s: float = 90) -> list:
    deadline = time.monotonic() + timeout_s
    while True:
        letters = asyncio.run(dlq_admin.read(settings))
        if len(letters) >= count or time.monotonic() > deadline:
            return letters
        time.sleep(0.5)


async def send_one(
    settings: Settings, topic: str, value: bytes, key: bytes, headers: list[tuple[str, bytes]]
) -> None:
    """One raw record, as a broken or foreign producer would write it."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key, headers=headers)
    finally:
        await producer.stop()


async def produce_bad(settings: Settings) -> None:
    # A CloudEvent without ce_subject: no agent can know whose it is.
    await send_one(
        settings,
        INGEST.physical(settings.namespace),
        b'{"n": 1}',
        b"someone",
        [("ce_id", b"bad-1"), ("ce_source", b"t"), ("ce_type", b"t.bad")],
    )


def test_dead_letter_once_with_reason_then_retry(
    services: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings()
    kafka.ensure_topics(settings)
    proc = stack.managed(settings, WORKER)
    try:
        stack.start_app(settings, WORKER)
        asyncio.run(produce_bad(settings))
        letters = letters_when(settings, 1)
        time.sleep(2)
        letters = asyncio.run(dlq_admin.read(settings))
        assert len(letters) == 1, "dead-lettered more than once"
        letter = letters[0]
        assert letter.reason == "invalid_envelope"
        assert "ce_subject" in letter.error
        assert letter.value == b'{"n": 1}'
        assert header_value(letter.headers, "ce_id") == "bad-1"
        assert letter.info.origin.topic == INGEST.physical(settings.namespace)

        for key, value in stack.settings_env(settings).items():
            monkeypatch.setenv(key, value)
        settings_module.get_settings.cache_clear()
        runner = CliRunner()
        listing = runner.invoke(cli, ["dlq", "list"])
        assert listing.exit_code == 0 and "invalid_envelope" in listing.output
        shown = runner.invoke(cli, ["dlq", "show", letter.position])
        assert shown.exit_code == 0 and "ce_id: bad-1" in shown.output
        retried = runner.invoke(cli, ["dlq", "retry", letter.position])
        assert retried.exit_code == 0, retried.output
        # The agent processed it again (still unfixable), so it is dead-lettered again,
        # now carrying where it was retried from.
        again = letters_when(settings, 2)
        assert len(again) == 2
        assert (
            header_value(again[1].headers, "x-tributary-retried-from") == f"dlq:{letter.position}"
        )
        purged = runner.invoke(cli, ["dlq", "purge", "--yes"])
        assert purged.exit_code == 0 and "purged 2" in purged.output
        assert asyncio.run(dlq_admin.read(settings)) == []
    finally:
        settings_module.get_settings.cache_clear()
        proc.stop(timeout_s=20)


def test_dead_letters_are_projected_into_clickhouse_with_reason_and_origin(
    services: Settings, tmp_path: Path
) -> None:
    settings = make_settings(chdb_dir=tmp_path / "chdb")
    kafka.ensure_topics(settings)
    worker, projector = stack.managed(settings, WORKER), stack.managed(settings, PROJECTOR)
    try:
        stack.start_app(settings, WORKER)
        stack.start_app(settings, PROJECTOR)
        asyncio.run(produce_bad(settings))
        db = settings.clickhouse_database
        sql = (
            "SELECT event_id, user_id, type, reason, error, origin_topic, origin_offset, value"
            f" FROM {db}.dead_letters"
        )
        deadline = time.monotonic() + 90
        while not (rows := query(settings, sql)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert len(rows) == 1, rows
        event_id, user, type_, reason, error, origin, origin_offset, value = rows[0]
        assert (event_id, user, type_, reason) == ("bad-1", "someone", "t.bad", "invalid_envelope")
        assert "ce_subject" in error
        assert (origin, origin_offset) == (INGEST.physical(settings.namespace), 0)
        assert value == '{"n": 1}'
        # The bad record itself is not an ingest row: only its dead letter is kept.
        assert query(settings, f"SELECT count() FROM {db}.events_ingest") == [[0]]
    finally:
        projector.stop(timeout_s=20)
        worker.stop(timeout_s=20)


def test_a_malformed_job_due_is_dead_lettered_and_the_command_agent_goes_on(
    services: Settings,
) -> None:
    settings = make_settings()
    kafka.ensure_topics(settings)
    proc = stack.managed(settings, WORKER)

    async def produce_due(value: bytes) -> None:
        topic = COMMANDS.physical(settings.namespace)
        await send_one(settings, topic, value, b"carol", [("ce_type", JOB_DUE.encode())])

    try:
        stack.start_app(settings, WORKER)
        asyncio.run(produce_due(b"not a job"))
        first = letters_when(settings, 1)
        assert [(d.reason, d.value) for d in first] == [("invalid_job", b"not a job")]
        assert first[0].info.origin.topic == COMMANDS.physical(settings.namespace)
        # The agent survived it: the next record on the same partition is decided too.
        asyncio.run(produce_due(b"{}"))
        both = letters_when(settings, 2)
        assert [d.value for d in both] == [b"not a job", b"{}"]
    finally:
        proc.stop(timeout_s=20)


def test_a_record_too_large_to_pass_on_is_dead_lettered_and_the_partition_goes_on(
    services: Settings,
) -> None:
    """A foreign producer's record that fills a batch: the counter cannot add its header
    and pass it on, so it dead-letters it (without the value) instead of retrying the
    partition forever, and the same user's next event is counted."""
    settings = make_settings()
    kafka.ensure_topics(settings)
    proc = stack.managed(settings, WORKER)
    topic = INGEST.physical(settings.namespace)

    async def produce() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap, max_request_size=MAX_RECORD_BYTES
        )
        await producer.start()
        try:
            for size in (MAX_RECORD_BYTES - 4096, 10):
                event = CloudEvent(
                    source="t", type="t.big", subject="big-u", data={"b": "x" * size}
                )
                key, value, headers = to_kafka(event)
                await producer.send_and_wait(topic, value, key=key, headers=headers)
        finally:
            await producer.stop()

    try:
        stack.start_app(settings, WORKER)
        asyncio.run(produce())
        [letter] = letters_when(settings, 1)
        assert letter.reason == "record_too_large"
        assert letter.value is None and letter.key == b"big-u"
        assert letter.info.origin.topic == topic
        counted = asyncio.run(read_until(settings, COUNTED.physical(settings.namespace), 1, 60))
        assert [from_kafka(r.value, r.headers).data["data"] for r in counted] == [{"b": "x" * 10}]
        [placed] = asyncio.run(dlq_admin.retry(settings, [letter]))
        assert not placed.sent and "skipped" in str(placed)
    finally:
        proc.stop(timeout_s=20)
