"""The status projection's pure mapping from events to Redis updates."""

from __future__ import annotations

from datetime import UTC, datetime

from projections.status import updates
from schemas.envelope import EventView
from schemas.jobs import JobState
from schemas.status import JobStatus

T = datetime(2026, 11, 25, tzinfo=UTC)


def view(type_: str, data: dict, event_id: str = "e1") -> EventView:
    return EventView(event_id, "s", type_, "alice", T, data)


def test_a_command_only_sets_submitted_where_nothing_is_known() -> None:
    [job] = updates("ns", view("inference.requested", {"inputs": ["x"]}, "j1"))
    assert job.key == "ns:job:j1" and job.only_if_new and job.fields["state"] == "submitted"


def test_every_job_event_state_is_a_state_the_api_knows() -> None:
    for state in ("queued", "active", "progress", "completed", "failed", "retrying"):
        data = {
            "job_id": "j1",
            "kind": "inference",
            "state": state,
            "attempt": 1,
            "priority": "normal",
            "accepted_ms": 1,
            "at_ms": 5,
        }
        status, pushed = updates("ns", view(f"job.{state}", data))
        assert JobState(status.fields["state"]) and pushed.push is not None


def test_the_executors_report_to_the_command_agent_is_not_a_job_state() -> None:
    """Found by a test: `job.finished` (on `commands`) once wrote state "finished", a 500."""
    data = {"job_id": "j1", "kind": "inference", "outcome": "completed"}
    assert updates("ns", view("job.finished", data)) == []


def test_a_job_hash_reads_back_as_the_api_answer() -> None:
    data = {
        "job_id": "j1",
        "kind": "inference",
        "state": "completed",
        "attempt": 2,
        "priority": "normal",
        "accepted_ms": 1,
        "at_ms": 9,
        "result": [[0.5, 1.0]],
    }
    status, _ = updates("ns", view("job.completed", data))
    raw = {k.encode(): v.encode() for k, v in status.fields.items()}
    answer = JobStatus.from_fields(raw).view("j1")
    assert (answer.state, answer.attempts, answer.progress) == ("completed", 2, 1.0)
    assert (answer.result, answer.updated_ms, answer.kind) == ([[0.5, 1.0]], 9, "inference")


def test_a_live_containers_hash_never_expires_and_an_ended_ones_does() -> None:
    """A running container must stay findable (and stoppable) however long it runs."""
    base = {"container_id": "c1", "job_id": "c1", "at_ms": 5}
    running, room = updates("ns", view("container.running", {**base, "state": "running"}))
    assert running.key == "ns:container:c1" and not running.expires
    assert room.key == "ns:push-container:{c1}" and room.push is not None  # its room
    exited = {**base, "state": "exited", "reason": "oom", "exit_code": 137}
    ended, _ = updates("ns", view("container.exited", exited))
    assert ended.expires
    assert (ended.fields["state"], ended.fields["reason"], ended.fields["exit_code"]) == (
        "exited",
        "oom",
        "137",
    )
    requested = updates("ns", view("container.start", {"image": "busybox"}, "c1"))
    assert [u.expires for u in requested if u.key == "ns:container:c1"] == [False]


def test_a_display_ready_gives_the_relay_its_address_and_the_room_no_address() -> None:
    data = {
        "container_id": "c1",
        "job_id": "c1",
        "at_ms": 5,
        "width": 1024,
        "height": 640,
        "address": "172.18.0.2",
    }
    status, room = updates("ns", view("container.display.ready", data))
    assert (status.fields["address"], status.fields["display"]) == ("172.18.0.2", "1024x640")
    assert not status.expires
    assert room.push is not None and b"172.18.0.2" not in room.push
