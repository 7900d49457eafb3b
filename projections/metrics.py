"""The projector's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ROWS_PROJECTED = Counter(
    "tributary_projector_rows_total", "Rows inserted into ClickHouse", ["table"]
)
SKIPPED = Counter(
    "tributary_projector_skipped_total", "Records that were not CloudEvents", ["topic"]
)
BATCH_SECONDS = Histogram("tributary_projector_flush_seconds", "Time to insert one flush")
JOB_SECONDS = Histogram(
    "tributary_job_seconds",
    "A job's time from acceptance to its end, by kind and how it ended (from its steps; a "
    "step read twice after a restart counts twice)",
    ["kind", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
)
STALLED = Gauge(
    "tributary_projector_stalled_partitions", "Partitions with lag and no progress for a while"
)
