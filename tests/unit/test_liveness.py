"""`/healthz/live`'s verdict: memory (every process) and loops still going round (the
worker's and the projector's)."""

from __future__ import annotations

import time

import psutil

from tributary import heartbeats, liveness
from tributary.liveness import MIB


def test_under_the_limit_is_alive() -> None:
    alive, body = liveness.verdict(100 * MIB - 1, 100)
    assert alive
    assert body == {"status": "up", "rss_mb": 100.0, "max_rss_mb": 100, "stuck_loops": []}


def test_at_or_over_the_limit_is_down() -> None:
    for rss in (100 * MIB, 250 * MIB):
        alive, body = liveness.verdict(rss, 100)
        assert not alive
        assert body["status"] == "down"
    assert liveness.verdict(250 * MIB, 100)[1]["rss_mb"] == 250.0


def test_check_reads_this_process() -> None:
    rss_mb = psutil.Process().memory_info().rss / MIB
    alive, body = liveness.check(max_rss_mb=100_000)
    assert alive
    assert abs(body["rss_mb"] - rss_mb) < 50  # the same process, moments apart
    assert liveness.check(max_rss_mb=1)[0] is False  # no Python process fits in 1 MiB


def test_a_loop_that_stops_beating_fails_liveness() -> None:
    heartbeats.beat("test-loop")
    beaten = time.monotonic()
    assert "test-loop" not in heartbeats.stuck(60, now=beaten + 59)
    assert "test-loop" in heartbeats.stuck(60, now=beaten + 61)  # (other tests' loops too)
    alive, body = liveness.verdict(MIB, 100, ["test-loop"])
    assert not alive and body["stuck_loops"] == ["test-loop"]
    heartbeats.forget("test-loop")  # a loop that ended on purpose
    assert "test-loop" not in heartbeats.stuck(60, now=beaten + 61)
    assert liveness.check(max_rss_mb=100_000, stuck_after_s=1e9)[0]
