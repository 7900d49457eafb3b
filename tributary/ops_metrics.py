"""Metrics every process reports the same way, for the alert rules (infra/monitoring/):
consumer lag per group and partition, and whether the process is ready."""

from __future__ import annotations

from prometheus_client import Gauge

LAG = Gauge(
    "tributary_consumer_lag",
    "Records a consumer group has yet to process on a partition (end minus position).",
    ["group", "topic", "partition"],
)
READY = Gauge(
    "tributary_ready",
    "1 while the process's /healthz/ready answers 200, else 0 (set when it is asked).",
)


def report_lag(group: str, topic: str, partition: int, position: int, end: int) -> None:
    LAG.labels(group=group, topic=topic, partition=str(partition)).set(max(0, end - position))
