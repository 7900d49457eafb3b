"""`POST /v1/events` throughput as the load grows, against the raw producer, in one run.

For each number of gateway processes (uvicorn workers) and each number of wrk connections:
saturated events/s and the CPU every process spent per event (`bench.cpu`), next to the raw
aiokafka producer of `bench.gateway` (row 1) measured at the start of the same run. Prints
a table and writes a PNG: events/s against connections with the raw rate and the 0.5 target
drawn in, and CPU µs per event by process.

Needs what `bench.gateway` needs, plus matplotlib (the bench extras):
    .venv/bin/python -m bench.gateway_sweep
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import typer

from bench.gateway import (
    PROCESSES,
    bench_settings,
    cpu_cell,
    measure_raw,
    measure_wrk,
    running_gateway,
)
from infra.local.process import free_port


@dataclass(frozen=True)
class Point:
    workers: int
    connections: int
    rate: float
    p50_ms: float
    p99_ms: float
    cpu_us: dict[str, float]


def main(
    seconds: int = 8,
    raw_events: int = 50_000,
    connections: str = "16,32,64,128,256",
    workers: str = "1,2",
    png: Path = Path("bench/gateway_sweep.png"),
) -> None:
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")
    settings = bench_settings(1)
    raw_rate, raw_cpu = measure_raw(settings, raw_events)
    points: list[Point] = []
    for count in (int(w) for w in workers.split(",")):
        gateway_settings = settings.model_copy(
            update={"gateway_workers": count, "gateway_port": free_port()}
        )
        with running_gateway(gateway_settings) as (url, key, pid):
            for conns in (int(c) for c in connections.split(",")):
                (rate, p50, p99), cpu = measure_wrk(url, key, pid, seconds, conns)
                points.append(Point(count, conns, rate, p50, p99, cpu))
                print(f"workers {count}, {conns} connections: {rate:,.0f}/s", flush=True)
    print(table(raw_rate, raw_cpu, points))
    plot(raw_rate, raw_cpu, points, png)
    print(f"\nwrote {png}")


def table(raw_rate: float, raw_cpu: dict[str, float], points: list[Point]) -> str:
    head = "| gateway processes | connections | events/s | vs raw | p50 ms | p99 ms | "
    lines = [
        head + " | ".join(f"CPU µs/event: {p}" for p in PROCESSES) + " |",
        "|---" * (6 + len(PROCESSES)) + "|",
        f"| raw aiokafka (baseline) | | {raw_rate:,.0f} | 1.00 | | | "
        + " | ".join(cpu_cell(raw_cpu, p) for p in PROCESSES)
        + " |",
    ]
    for pt in points:
        lines.append(
            f"| {pt.workers} | {pt.connections} | {pt.rate:,.0f} | {pt.rate / raw_rate:.2f} | "
            f"{pt.p50_ms:.1f} | {pt.p99_ms:.1f} | "
            + " | ".join(cpu_cell(pt.cpu_us, p) for p in PROCESSES)
            + " |"
        )
    return "\n".join(lines)


def plot(raw_rate: float, raw_cpu: dict[str, float], points: list[Point], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (rates, costs) = plt.subplots(1, 2, figsize=(13, 5))
    for count in sorted({p.workers for p in points}):
        mine = [p for p in points if p.workers == count]
        rates.plot(
            [p.connections for p in mine],
            [p.rate for p in mine],
            marker="o",
            label=f"gateway, {count} process{'es' if count > 1 else ''}",
        )
    rates.axhline(raw_rate, color="black", label=f"raw aiokafka ({raw_rate:,.0f}/s)")
    rates.axhline(raw_rate / 2, color="black", linestyle="--", label="target: 0.5 of raw")
    rates.set_xscale("log", base=2)
    ticks = sorted({p.connections for p in points})
    rates.set_xticks(ticks, [str(t) for t in ticks])
    rates.set_xlabel("wrk connections")
    rates.set_ylabel("events/s (POST /v1/events, saturated)")
    rates.set_ylim(bottom=0)
    rates.legend()
    rates.set_title("Throughput, same machine, same run")

    labels = ["raw (producer\n= bench)"] + [f"{p.workers}p/{p.connections}c" for p in points]
    rows = [raw_cpu] + [p.cpu_us for p in points]
    bottom = [0.0] * len(rows)
    for name in PROCESSES:
        heights = [row.get(name, 0.0) for row in rows]
        costs.bar(labels, heights, bottom=bottom, label=name)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    costs.set_ylabel("CPU µs per event")
    costs.set_title("Who spends the CPU (p = gateway processes, c = connections)")
    costs.tick_params(axis="x", labelrotation=60)
    costs.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=90)


if __name__ == "__main__":
    typer.run(main)
