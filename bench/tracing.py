"""The gateway before tracing existed, with tracing off, and on, side by side in one run
(issue #21).

Rounds alternate before, off, on: a gateway process each time, `wrk` on `POST /v1/events`
(32 connections, saturated), after a warm-up: events/s, p50/p99, and the gateway's CPU µs
per event. "before" runs the gateway of `--before` (the commit before the OpenTelemetry
SDK came in, checked out as a git worktree beside this one) on the same environment; "off"
and "on" run this tree, on sending every request's span and the record's context to a
real Jaeger started here (`TRIBUTARY_OTLP_ENDPOINT`). Off, the gateway skips tracing
(`tributary.telemetry.enabled`); before against off says what tracing costs when off, and
rounds of one kind against each other how much rounds differ anyway.

Needs `tributary up` (broker, Redis), `wrk`, and Jaeger's build (cached after the first):
    .venv/bin/python -m bench.tracing
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import typer

from bench.gateway import bench_settings, measure_wrk, running_gateway
from infra.local import jaeger
from tributary.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
# The last commit before the OpenTelemetry SDK (421f85e brought it in).
BEFORE_TRACING = "1d7f299"


def worktree(commit: str) -> Path:
    """`commit` checked out beside this tree (made once, kept for later runs)."""
    path = ROOT.parent / f".tributary-bench-{commit}"
    if not path.exists():
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), commit],
            check=True,
            capture_output=True,
        )
    return path


@contextlib.contextmanager
def source(tree: Path | None) -> Iterator[None]:
    """Processes started meanwhile import Tributary from `tree` (ahead of this checkout's
    editable install, and not from the working directory: PYTHONSAFEPATH), or from this
    checkout when None. Checked: a child names where its `gateway` package came from."""
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "PYTHONSAFEPATH")}
    if tree is not None:
        os.environ.update(PYTHONPATH=str(tree), PYTHONSAFEPATH="1")
    try:
        where = subprocess.run(
            [sys.executable, "-c", "import gateway; print(gateway.__file__)"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        expected = tree if tree is not None else ROOT
        assert Path(where).is_relative_to(expected), f"gateway from {where}, not {expected}"
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def main(
    seconds: int = 10, connections: int = 32, rounds: int = 2, before: str = BEFORE_TRACING
) -> None:
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")
    print(jaeger.start(Settings()))
    old = worktree(before)
    base = bench_settings(1)
    rows: list[tuple[str, float, float, float, float]] = []
    for _ in range(rounds):
        for name, tree, endpoint in (
            (f"before ({before})", old, None),
            ("off", None, None),
            ("on", None, jaeger.OTLP_ENDPOINT),
        ):
            settings = base.model_copy(update={"otlp_endpoint": endpoint})
            with source(tree), running_gateway(settings) as (url, key, pid):
                (rate, p50, p99), cpu = measure_wrk(url, key, pid, seconds, connections)
            rows.append((name, rate, p50, p99, cpu.get("gateway", 0.0)))
    print(
        "\n| tracing | events/s | p50 ms | p99 ms | gateway CPU µs/event |\n|---|---|---|---|---|"
    )
    for name, rate, p50, p99, gateway_us in rows:
        print(f"| {name} | {rate:,.0f} | {p50:.1f} | {p99:.1f} | {gateway_us:.0f} |")
    means = {}
    for name in dict.fromkeys(r[0] for r in rows):
        rates = [r[1] for r in rows if r[0] == name]
        cpus = [r[4] for r in rows if r[0] == name]
        means[name] = sum(rates) / len(rates)
        print(f"mean {name}: {means[name]:,.0f} events/s, {sum(cpus) / len(cpus):.0f} µs/event")


if __name__ == "__main__":
    typer.run(main)
