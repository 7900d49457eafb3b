"""The dashboard's rules (what each page lists) and its door (never open), without services."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from dashboard import queries, views
from dashboard.app import create_app
from schemas import headers as h
from schemas.dead_letters import Letter
from tests.conftest import make_settings
from tributary import admin


def letter(partition: int, offset: int, reason: str, ms: int) -> Letter:
    return Letter(partition, offset, ms, b"u1", b"{}", [(h.REASON, reason.encode())])


LETTERS = [
    letter(0, 0, "invalid_envelope", 1_000),
    letter(0, 1, "attempts_exhausted", 2_000),
    letter(1, 0, "invalid_envelope", 3_000),
    letter(1, 2, "invalid_envelope", 4_000),
]


def test_the_list_hides_retried_letters_and_filters_by_reason() -> None:
    listing = views.letter_list(LETTERS, retried={"1:0"}, reason=None, show_retried=False)
    assert [d.position for d in listing.letters] == ["1:2", "0:1", "0:0"]  # newest first
    assert listing.retried == 1
    assert listing.reasons == [("invalid_envelope", 2), ("attempts_exhausted", 1)]

    by_reason = views.letter_list(LETTERS, {"1:0"}, "invalid_envelope", show_retried=False)
    assert [d.position for d in by_reason.letters] == ["1:2", "0:0"]
    with_retried = views.letter_list(LETTERS, {"1:0"}, "invalid_envelope", show_retried=True)
    assert [d.position for d in with_retried.letters] == ["1:2", "1:0", "0:0"]


def test_the_list_shows_the_newest_and_counts_them_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(views, "MAX_LETTERS_SHOWN", 2)
    listing = views.letter_list(LETTERS, set(), None, show_retried=False)
    assert listing.matching == 4
    assert [d.position for d in listing.letters] == ["1:2", "1:0"]


def test_lag_is_end_less_committed_per_group_and_partition() -> None:
    groups = {"ns-counter": ["ns-ingest"], "ns-projector": ["ns-ingest", "ns-counted"]}
    committed = {"ns-counter": {("ns-ingest", 0): 7, ("ns-ingest", 1): 10}}
    ends = {("ns-ingest", 0): 10, ("ns-ingest", 1): 10, ("ns-counted", 0): 4}
    rows = views.lag_rows(groups, committed, ends)
    lags = {(r.group, r.topic, r.partition): (r.committed, r.lag) for r in rows}
    assert lags == {
        ("ns-counter", "ns-ingest", 0): (7, 3),
        ("ns-counter", "ns-ingest", 1): (10, 0),
        ("ns-projector", "ns-counted", 0): (None, 4),  # never committed: all of it
        ("ns-projector", "ns-ingest", 0): (None, 10),
        ("ns-projector", "ns-ingest", 1): (None, 10),
    }
    assert views.lag_by_group(rows) == {"ns-counter": 3, "ns-projector": 24}


def test_a_timeline_is_in_time_order_and_shows_a_replayed_step_once() -> None:
    rows = [
        ("2026-12-03 10:00:02", "failed", 1, 0, "triton_unavailable"),
        ("2026-12-03 10:00:00", "queued", 0, 0, ""),
        ("2026-12-03 10:00:01", "running", 1, 0, None),
        ("2026-12-03 10:00:02", "failed", 1, 0, "triton_unavailable"),
        ("2026-12-03 10:00:05", "dead_lettered", 2, 0, "attempts_exhausted"),
    ]
    steps = views.timeline(rows)
    assert [(s.state, s.attempt) for s in steps] == [
        ("queued", 0),
        ("running", 1),
        ("failed", 1),
        ("dead_lettered", 2),
    ]
    assert steps[0].reason is None and steps[2].reason == "triton_unavailable"


def test_chart_series_follow_the_minutes_and_take_quantiles_apart() -> None:
    rows = [("2026-12-03 10:01:00", [5.0, 9.0, 20.0]), ("2026-12-03 10:00:00", [4.0, 8.0, 10.0])]
    chart = views.series(views.quantile_rows(rows), ["p50", "p99"])
    assert chart.labels == ["2026-12-03 10:00:00", "2026-12-03 10:01:00"]
    assert chart.lines == {"p50": [4.0, 5.0], "p99": [10.0, 20.0]}


def test_ids_that_reach_sql_text_hold_no_quote() -> None:
    assert views.valid_user("alice@example.com")
    for hostile in ("a'b", "a\\b", "", "a b", "x" * 200):
        assert not views.valid_user(hostile)
        assert not views.valid_id(hostile)
    assert "WHERE user_id = 'alice'" in queries.user_jobs("db", "alice")


def test_the_dashboard_is_never_open() -> None:
    settings = make_settings(dashboard_host="0.0.0.0", admin_key_sha256="")
    with pytest.raises(admin.MissingCredential):
        create_app(settings)

    key = admin.new_key()
    app = create_app(make_settings(admin_key_sha256=admin.hash_key(key)))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        for path in ("/", "/dlq", "/lag", "/jobs/j1", "/users/alice"):
            answer = client.get(path, follow_redirects=False)
            assert answer.status_code == 303, path
            assert answer.headers["location"].startswith("/login?next=")
        assert client.post("/dlq/purge", data={"confirm": "purge"}).url.path == "/login"
        refused = client.post("/login", data={"key": admin.new_key(), "next": "/lag"})
        assert refused.status_code == 401 and "not an admin key" in refused.text
        assert client.get("/healthz/live").status_code == 200

        answer = client.post(
            "/login", data={"key": key, "next": "//evil.example/"}, follow_redirects=False
        )
        assert answer.status_code == 303 and answer.headers["location"] == "/"
        cookie = answer.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        # Logged in: a page that needs no service answers (a bad id is refused, not run).
        assert client.get("/users/a'b").status_code == 400
        assert client.post("/dlq/purge", data={"confirm": "no"}).status_code == 400
        client.post("/logout")
        assert client.get("/users/a'b", follow_redirects=False).status_code == 303
