"""Health pages on the worker's Faust web server: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

from typing import Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest


def ready(app: faust.App) -> bool:
    """Assigned, recovered, and not in the middle of a rebalance."""
    return bool(app.rebalancing_count > 0 and not app.rebalancing and not app.in_recovery)


def install(app: faust.App) -> None:
    async def live(self: Any, request: Any) -> Any:
        return self.json({"status": "up"})

    async def readiness(self: Any, request: Any) -> Any:
        ok = ready(app)
        return self.json(
            {
                "status": "up" if ok else "down",
                "rebalancing": bool(app.rebalancing),
                "in_recovery": bool(app.in_recovery),
                "rebalances": app.rebalancing_count,
            },
            status=200 if ok else 503,
        )

    async def metrics(self: Any, request: Any) -> Any:
        return self.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST)

    app.page("/healthz/live")(live)
    app.page("/healthz/ready")(readiness)
    app.page("/metrics")(metrics)
