"""The stream workers' Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_PROCESSED = Counter(
    "tributary_streams_events_total", "Events handled by an agent", ["agent", "outcome"]
)
STALLED = Gauge(
    "tributary_streams_stalled_partitions",
    "Source partitions with lag whose committed offset has not moved for a while",
)
BATCH_RECORDS = Histogram(
    "tributary_streams_transaction_records",
    "Input records decided in one transaction of a transactional loop",
    ["agent"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 512, 2000),
)
COMMIT_SECONDS = Histogram(
    "tributary_streams_commit_seconds",
    "Time one transaction of a transactional loop took to commit",
    ["agent"],
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
)
ATTEMPTS_RUNNING = Gauge(
    "tributary_executor_attempts_running", "Job attempts this worker is running now", ["tier"]
)
POOL_IN_FLIGHT = Gauge(
    "tributary_gpu_pool_in_flight", "Inference attempts this worker holds a pool slot for", ["pool"]
)
POOL_WAIT_SECONDS = Histogram(
    "tributary_gpu_pool_wait_seconds", "Time an attempt waited for a GPU pool slot", ["pool"]
)
