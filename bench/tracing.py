"""The gateway with tracing off and on, side by side in one run (issue #21).

Rounds alternate off, on, off, on: a gateway process each time (the same settings but
`TRIBUTARY_OTLP_ENDPOINT`, which sends every request's span and the record's context to a
real Jaeger, started here), `wrk` on `POST /v1/events` (32 connections, saturated), after
a warm-up: events/s, p50/p99, and the gateway's CPU µs per event. Off, the gateway skips
tracing entirely (`tributary.telemetry.enabled`); the off rounds against each other say
how much rounds differ anyway.

Needs `tributary up` (broker, Redis), `wrk`, and Jaeger's build (cached after the first):
    .venv/bin/python -m bench.tracing
"""

from __future__ import annotations

import shutil
import sys

import typer

from bench.gateway import bench_settings, measure_wrk, running_gateway
from infra.local import jaeger
from tributary.settings import Settings


def main(seconds: int = 10, connections: int = 32, rounds: int = 2) -> None:
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")
    print(jaeger.start(Settings()))
    base = bench_settings(1)
    rows: list[tuple[str, float, float, float, float]] = []
    for _ in range(rounds):
        for tracing in (False, True):
            settings = base.model_copy(
                update={"otlp_endpoint": jaeger.OTLP_ENDPOINT if tracing else None}
            )
            with running_gateway(settings) as (url, key, pid):
                (rate, p50, p99), cpu = measure_wrk(url, key, pid, seconds, connections)
            rows.append(("on" if tracing else "off", rate, p50, p99, cpu.get("gateway", 0.0)))
    print(
        "\n| tracing | events/s | p50 ms | p99 ms | gateway CPU µs/event |\n|---|---|---|---|---|"
    )
    for name, rate, p50, p99, gateway_us in rows:
        print(f"| {name} | {rate:,.0f} | {p50:.1f} | {p99:.1f} | {gateway_us:.0f} |")
    off = [r[1] for r in rows if r[0] == "off"]
    on = [r[1] for r in rows if r[0] == "on"]
    print(f"\nmean events/s: off {sum(off) / len(off):,.0f}, on {sum(on) / len(on):,.0f}")


if __name__ == "__main__":
    typer.run(main)
