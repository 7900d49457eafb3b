"""The contract: published schemas match the models, breaking changes are caught, docs are fresh."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import Field, create_model

from schemas import contracts, publishing, topic_docs
from schemas.contracts import Contract, Edition
from schemas.editions import editions
from schemas.envelope import CloudEvent, from_kafka_lenient, to_kafka
from schemas.evolution import breaking_changes
from schemas.jobs import JobStep
from schemas.topics import REGISTRY
from tributary.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_the_published_schemas_are_the_models_and_nothing_breaks_their_readers() -> None:
    breaking, stale = publishing.check()
    assert breaking == [], "bump the type's version instead:\n" + "\n".join(breaking)
    assert stale == [], "run `tributary schemas export`:\n" + "\n".join(stale)


def test_docs_topics_md_is_generated_from_the_registries() -> None:
    written = (ROOT / "docs" / "topics.md").read_text()
    default = Settings.model_fields["partitions"].default
    assert written == topic_docs.markdown(default), "run `tributary schemas export`"


def test_every_topic_carries_known_types_and_every_type_has_a_topic() -> None:
    carried = {t for spec in REGISTRY for t in spec.carries}
    assert carried <= {c.type for c in contracts.CONTRACTS}
    assert {c.type for c in contracts.CONTRACTS} <= carried


def _registry_with(replacement: Contract) -> list[Contract]:
    return [replacement if c.type == replacement.type else c for c in contracts.CONTRACTS]


def _without(model: type[JobStep], field: str) -> Any:
    fields = {
        name: (info.annotation, info) for name, info in model.model_fields.items() if name != field
    }
    return create_model("JobStep", **fields)  # type: ignore[call-overload]


class RetypedAttempt(JobStep):
    attempt: str  # type: ignore[assignment]


class NewRequiredField(JobStep):
    queue: str


class NewOptionalField(JobStep):
    queue: str | None = Field(default=None, description="Added later, optional.")


@pytest.mark.parametrize(
    ("changed", "expected"),
    [
        (_without(JobStep, "reason"), "data.reason: removed"),
        (RetypedAttempt, "data.attempt: type"),
        (NewRequiredField, "data.queue: new required field"),
    ],
)
def test_an_incompatible_change_is_caught_and_a_version_bump_makes_it_pass(
    changed: Any, expected: str
) -> None:
    description = contracts.contract("job.completed").description
    same_version = Contract("job.completed", changed, description)
    breaking, _ = publishing.check(registry=_registry_with(same_version))
    assert any(line.startswith(f"job.completed v1: {expected}") for line in breaking), breaking

    today = date.today()
    until = today + timedelta(days=90)
    bumped = Contract(
        "job.completed",
        changed,
        description,
        version=2,
        older=(Edition(1, JobStep, today, until, downgrade=lambda data: data),),
    )
    breaking, stale = publishing.check(registry=_registry_with(bumped))
    assert breaking == []
    assert stale == ["job.completed v2: not exported"]  # `tributary schemas export` next


def test_a_compatible_change_needs_no_bump_only_an_export(tmp_path: Path) -> None:
    same_version = Contract("job.completed", NewOptionalField, "A job step: completed.")
    registry = _registry_with(same_version)
    breaking, stale = publishing.check(registry=registry)
    assert breaking == [] and len(stale) == 1 and "job.completed v1" in stale[0]


def _schema(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": sorted(properties)}


def test_evolution_rules() -> None:
    old = _schema(kind={"enum": ["a", "b"]}, n={"type": "integer"})
    assert breaking_changes(old, old) == []
    assert breaking_changes(old, _schema(kind={"enum": ["a"]}, n={"type": "integer"})) == [
        "data.kind: allowed values narrowed (no longer ['b'])"
    ]
    widened = _schema(kind={"enum": ["a", "b", "c"]}, n={"type": "number"})
    assert breaking_changes(old, widened) == []
    nullable = _schema(
        kind={"enum": ["a", "b"]}, n={"anyOf": [{"type": "integer"}, {"type": "null"}]}
    )
    assert breaking_changes(old, nullable) == []
    assert breaking_changes(nullable, old) == [
        "data.n: type ['integer', 'null'] became ['integer']"
    ]
    closed = {**old, "additionalProperties": False}
    grown = {**closed, "properties": {**old["properties"], "extra": {"type": "string"}}}
    assert breaking_changes(closed, grown) == [
        "data.extra: added to an object that allows no other fields"
    ]
    assert breaking_changes(old, {**grown, "additionalProperties": True}) == []


def test_a_bumped_type_is_written_side_by_side_until_its_date(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    since, until = date(2026, 12, 1), date(2027, 3, 1)
    v2 = create_model("Finished", job_id=(str, ...), kind=(str, ...), result=(str, ...))
    bumped = Contract(
        "job.finished",
        v2,
        "test",
        version=2,
        older=(
            Edition(
                1,
                contracts.contract("job.finished").model,
                since,
                until,
                lambda d: {**d, "outcome": d["result"]},
            ),
        ),
    )
    monkeypatch.setitem(contracts._BY_TYPE, "job.finished", bumped)
    event = CloudEvent(
        source="s",
        type="job.finished",
        subject="u",
        data={"job_id": "j", "kind": "inference", "result": "completed"},
    )
    copies = editions(event, today=until)
    assert [c.id for c in copies] == [event.id, event.id]
    encoded = [to_kafka(c) for c in copies]
    views = [from_kafka_lenient(value, headers) for _, value, headers in encoded]
    assert [v.dataschema for v in views] == [
        "urn:tributary:schema:job.finished:2",
        "urn:tributary:schema:job.finished:1",
    ]
    assert views[1].data["outcome"] == "completed"
    assert [contracts.is_current(v.dataschema) for v in views] == [True, False]
    assert len(editions(event, today=until + timedelta(days=1))) == 1


def test_an_older_version_is_written_for_at_least_90_days() -> None:
    with pytest.raises(ValueError, match="90 days"):
        Edition(1, JobStep, date(2026, 12, 1), date(2027, 2, 1), downgrade=lambda d: d)


def test_every_type_the_agents_build_is_registered() -> None:
    """What the emit builders and the counter write has a contract (else `to_kafka` would
    write no dataschema); found by building one of each, not from the registry."""
    from schemas.jobs import ContainerStatus, InferenceSpec, Job, JobKind, JobState
    from streams.events.sequencing import stamp
    from streams.jobs import emit

    job = Job(
        job_id="j",
        user_id="u",
        kind=JobKind.INFERENCE,
        accepted_ms=1,
        spec=InferenceSpec(model="m", inputs=["a"]),
    )
    command = CloudEvent(source="s", type="inference.requested", subject="u")
    built = [
        *(emit.job_event(job, state, 2) for state in JobState if state is not JobState.SUBMITTED),
        *(
            emit.container_event(job.user_id, "c", job.job_id, status, 2)
            for status in ContainerStatus
        ),
        emit.rejected(command, "too_many", 2),
        emit.job_finished(job, "completed", 2),
        emit.work(job, 2),
        emit.work(job, 2, due=True),
        stamp(command, 0)[1],
    ]
    for event in built:
        assert contracts.known(event.type), event.type
        _, value, headers = to_kafka(event)
        uri = dict(headers)["ce_dataschema"].decode()
        named = contracts.parse_dataschema(uri)
        assert named is not None
        model = contracts.contract(named[0]).models()[named[1]]
        model.model_validate_json(value)


# The grep-level fact: outside `schemas/`, no module spells a header name, a topic name or a
# Redis key format. (Tests may: they check the wire.)
SHIPPED = ("gateway", "streams", "projections", "tributary", "infra")
FORBIDDEN = {
    "a CloudEvents header": re.compile(r"""["']ce_[a-z]+["']"""),
    "a Tributary header": re.compile(r"""["']x-tributary-[a-z-]*["']""", re.I),
    "a record header": re.compile(r"""["'](traceparent|idempotency-key)["']"""),
    # A dotted name as a literal, any name after a namespace (`f"{ns}.dlq"`), a changelog.
    # ("commands" and "dlq" alone are also an agent's, a table's and a CLI group's names.)
    "a topic name": re.compile(
        "|".join(rf"""["']{re.escape(s.name)}["']""" for s in REGISTRY if "." in s.name)
        + "|"
        + "|".join(rf"""}}\.{re.escape(s.name)}["']""" for s in REGISTRY)
        + r"""|-changelog["']"""
    ),
    "a Redis key format": re.compile(r"""f["']\{[^}]*namespace\}:"""),
}


def test_no_module_outside_schemas_defines_a_header_topic_or_redis_key() -> None:
    found = []
    for package in SHIPPED:
        for path in sorted((ROOT / package).rglob("*.py")):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                for what, pattern in FORBIDDEN.items():
                    if pattern.search(line):
                        found.append(f"{path.relative_to(ROOT)}:{number}: {what}: {line.strip()}")
    assert found == []


def test_the_grep_finds_what_it_forbids() -> None:
    lines = {
        'x = "ce_type"': "a CloudEvents header",
        'h = ("x-tributary-origin", b"")': "a Tributary header",
        'k.startswith("x-tributary-")': "a Tributary header",
        'headers["traceparent"] = t': "a record header",
        'topic = "events.counted"': "a topic name",
        'topic = f"{settings.namespace}.dlq"': "a topic name",
        'name = f"{app}-{table}-changelog"': "a topic name",
        'key = f"{namespace}:job:{job_id}"': "a Redis key format",
        'key = f"{self._namespace}:rl:{x}"': "a Redis key format",
    }
    for line, what in lines.items():
        assert FORBIDDEN[what].search(line), line
    assert not any(p.search('log.info("events counted")') for p in FORBIDDEN.values())
