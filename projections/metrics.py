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
STALLED = Gauge(
    "tributary_projector_stalled_partitions", "Partitions with lag and no progress for a while"
)
