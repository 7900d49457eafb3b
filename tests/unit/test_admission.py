"""The command agent's limits: pure, event-time, so a replay decides the same."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streams.jobs import admission
from streams.jobs.admission import Quotas, UserState
from tributary.limits import parse_windows

QUOTAS = Quotas(parse_windows("3/s,5/m"), max_in_flight_jobs=2, max_running_containers=1)


def test_in_flight_quota_refuses_then_frees_on_finish() -> None:
    state = UserState()
    assert admission.admit_inference(state, QUOTAS, "a", 0).accepted
    assert admission.admit_inference(state, QUOTAS, "b", 1).accepted
    refused = admission.admit_inference(state, QUOTAS, "c", 2)
    assert (refused.accepted, refused.reason) == (False, "too_many_jobs_in_flight")
    admission.finished(state, "a", None, "completed")
    assert admission.admit_inference(state, QUOTAS, "c", 3).accepted


def test_rate_window_in_event_time_with_retry_after() -> None:
    state = UserState()
    quotas = Quotas(parse_windows("3/s"), 100, 100)
    for i in range(3):
        assert admission.admit_inference(state, quotas, f"j{i}", 1000).accepted
    refused = admission.admit_inference(state, quotas, "j3", 1000)
    assert (refused.accepted, refused.reason) == (False, "rate_limited")
    assert refused.retry_after_ms == 334
    assert admission.admit_inference(state, quotas, "j3", 1334).accepted


def test_container_slot_is_kept_while_running_and_freed_on_stop_or_failure() -> None:
    state = UserState()
    assert admission.admit_container(state, QUOTAS, "c1", 0).accepted
    assert admission.admit_container(state, QUOTAS, "c2", 1).reason == "too_many_containers"
    admission.finished(state, "c1", "c1", "running")
    assert state.containers == {"c1": "running"}
    assert admission.stop_container(state, "c9").reason == "no_such_container"
    assert admission.stop_container(state, "c1").accepted
    admission.finished(state, "stop-1", "c1", "stopped")
    assert state.containers == {}
    assert admission.admit_container(state, QUOTAS, "c3", 2).accepted
    admission.finished(state, "c3", "c3", "dead_lettered")
    assert state.containers == {}


def test_debounce_keeps_only_the_latest_of_a_key() -> None:
    state = UserState()
    assert admission.debounce(state, "k", "j1") is None
    assert admission.debounce(state, "k", "j2") == "j1"
    assert not admission.is_latest(state, "k", "j1")
    assert admission.is_latest(state, "k", "j2")
    assert admission.is_latest(state, None, "j3")


commands = st.lists(
    st.tuples(
        st.sampled_from(["inference", "container", "finish", "stop"]),
        st.integers(0, 5),  # which id
        st.integers(0, 400),  # ms since the previous command
    ),
    max_size=60,
)


def run(log: list[tuple[str, int, int]]) -> list[tuple[bool, str | None]]:
    state = UserState()
    now = 1_700_000_000_000
    out = []
    for kind, n, gap in log:
        now += gap
        if kind == "inference":
            v = admission.admit_inference(state, QUOTAS, f"j{n}", now)
        elif kind == "container":
            v = admission.admit_container(state, QUOTAS, f"c{n}", now)
        elif kind == "stop":
            v = admission.stop_container(state, f"c{n}")
        else:
            admission.finished(state, f"j{n}", None, "completed")
            continue
        out.append((v.accepted, v.reason))
        state = UserState.from_json(state.to_json())  # as the table stores it
    return out


@given(commands)
def test_the_same_log_gives_the_same_decisions(log: list[tuple[str, int, int]]) -> None:
    assert run(log) == run(log)
    assert all(
        r is None
        or r
        in {"rate_limited", "too_many_jobs_in_flight", "too_many_containers", "no_such_container"}
        for _, r in run(log)
    )
