"""`/healthz/live`'s memory verdict (gateway and worker)."""

from __future__ import annotations

import psutil

from tributary import liveness
from tributary.liveness import MIB


def test_under_the_limit_is_alive() -> None:
    alive, body = liveness.verdict(100 * MIB - 1, 100)
    assert alive
    assert body == {"status": "up", "rss_mb": 100.0, "max_rss_mb": 100}


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
