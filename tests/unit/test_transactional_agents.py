"""The transactional loop's pure parts: the changelog codec, and the
counter and command processors record by record (no broker)."""

from __future__ import annotations

from aiokafka.structs import ConsumerRecord

from schemas import tables
from schemas.envelope import CloudEvent, from_kafka, to_kafka
from schemas.jobs import INFERENCE_REQUESTED
from streams.events.counter import EventCounter
from streams.jobs.commands import Commands
from streams.runtime import state
from streams.runtime.outputs import Output
from tributary.settings import Settings

SETTINGS = Settings(namespace="unit", dedup_ttl_s=60, command_rate_limits="2/s")


def record(event: CloudEvent, topic: str, at_ms: int, offset: int = 0) -> ConsumerRecord:
    key, value, headers = to_kafka(event)
    return ConsumerRecord(
        topic, 0, offset, at_ms, 0, key, value, None, len(key), len(value), tuple(headers)
    )


def test_changelog_codec_round_trips_and_skips_foreign_records() -> None:
    assert state.decode(*state.encode("u1", {"x": [1]})) == ("u1", {"x": [1]})
    assert state.decode(*state.encode("u1", None)) == ("u1", None)
    assert state.decode(b'["u1", [0, 1]]', b"1") is None  # a Faust windowed key
    assert state.decode(b"not json", b"1") is None
    assert state.decode(None, b"1") is None


def test_counter_numbers_each_users_events_once_per_id() -> None:
    counter = EventCounter(SETTINGS)
    t = state.Tables(counter.tables)
    outs = []
    for i, (user, event_id) in enumerate([("a", "1"), ("b", "2"), ("a", "3"), ("a", "1")]):
        ev = CloudEvent(id=event_id, source="t", type="t", subject=user)
        outs += counter.process(record(ev, counter.source, 1_000 + i, i), t)
    counted = [from_kafka(o.value, o.headers) for o in outs]
    assert [(e.subject, e.data["seq"], e.data["source_id"]) for e in counted] == [
        ("a", 1, "1"),
        ("b", 1, "2"),
        ("a", 2, "3"),
    ]
    assert {o.topic for o in outs} == {counter.counted}
    assert t[tables.USER_SEQ].get("a") == 2


def test_counter_dead_letters_a_record_that_is_not_an_event() -> None:
    counter = EventCounter(SETTINGS)
    bad = ConsumerRecord(counter.source, 3, 7, 0, 0, b"u", b"{}", None, 1, 2, ())
    (out,) = counter.process(bad, state.Tables(counter.tables))
    headers = dict(out.headers)
    assert out.topic == counter.dlq and out.value == b"{}"
    assert headers["x-tributary-reason"] == b"invalid_envelope"
    assert headers["x-tributary-origin"] == f"{counter.source}:3:7".encode()


def inference(command_id: str, user: str = "u") -> CloudEvent:
    return CloudEvent(
        id=command_id, source="t", type=INFERENCE_REQUESTED, subject=user, data={"inputs": ["x"]}
    )


def test_commands_queue_refuse_and_ignore_a_repeated_command() -> None:
    commands = Commands(SETTINGS)
    t = state.Tables(commands.tables)
    outs = [
        commands.process(record(inference(cid), commands.source, 5_000, i), t)
        for i, cid in enumerate(["j1", "j2", "j1", "j3"])
    ]
    queued, second, repeated, refused = outs
    # job.work: version 2 and, until its date, version 1 beside it (schemas/jobs_v1.py).
    work = commands.tiers["normal"]
    assert [o.topic for o in queued] == [commands.jobs, work, work]
    assert len(second) == 3 and repeated == []
    assert [o.topic for o in refused] == [commands.rejected, commands.jobs]
    assert from_kafka(refused[0].value, refused[0].headers).data["reason"] == "rate_limited"
    assert len(t[tables.USER_STATE].get("u")["in_flight"]) == 2
    # What happened to each command, counted by the loop once the batch commits.
    assert t.apply() == {"decided": 3, "duplicate": 1}


def test_commands_dead_letter_an_unknown_command_and_keep_state() -> None:
    commands = Commands(SETTINGS)
    t = state.Tables(commands.tables)
    odd = CloudEvent(id="x", source="t", type="no.such.command", subject="u")
    (out,) = commands.process(record(odd, commands.source, 0), t)
    assert out.topic == commands.dlq
    assert dict(out.headers)["x-tributary-reason"] == b"invalid_command"
    assert list(t.changes()) == []
    assert t.apply() == {"dead_lettered": 1}


def test_an_input_too_large_to_pass_on_is_dead_lettered_without_its_value() -> None:
    """The counter would add its sequence header to a record that already fills a batch,
    and its producer would refuse the output on every retry of the partition."""
    from schemas.envelope import header_value
    from streams.runtime import decide
    from streams.runtime.oversize import MAX_INPUT_BYTES

    counter = EventCounter(SETTINGS)
    t = state.Tables(counter.tables)
    for size, passed_on in ((MAX_INPUT_BYTES - 2000, True), (MAX_INPUT_BYTES, False)):
        event = CloudEvent(source="s", type="t", subject="big", data={"b": "x" * size})
        outputs = decide.one(counter, record(event, "unit.events.ingest", 1_000), t)
        [out] = outputs
        assert isinstance(out, Output)
        if passed_on:
            assert out.topic == counter.counted
            assert from_kafka(out.value, out.headers).data["data"] == event.data
        else:
            assert out.topic == counter.dlq
            assert out.value is None and out.key == b"big"
            assert header_value(out.headers, "x-tributary-reason") == "record_too_large"
            assert header_value(out.headers, "x-tributary-origin") == "unit.events.ingest:0:0"
    t.discard()
