"""Entry point of a stream worker process (`tributary worker`).

SIGTERM drains first (`streams.app.Lifecycle`): readiness goes false, the loops finish the
batch in hand and commit, the runners drain; then Faust stops and the process exits 0.
"""

from __future__ import annotations

import signal
from typing import Any

import faust
import structlog

from streams.app import STOP_GRACE_S, Lifecycle, create_app
from tributary import telemetry
from tributary.settings import Settings

log = structlog.get_logger(__name__)


class DrainingWorker(faust.Worker):
    """Faust's worker, with the drain in front of its stop on SIGTERM."""

    def __init__(self, app: faust.App, lifecycle: Lifecycle, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.lifecycle = lifecycle

    async def _stop_on_signal(self, sig: signal.Signals) -> None:
        if sig == signal.SIGTERM:
            drained = await self.lifecycle.drain(STOP_GRACE_S)
            log.info("worker drained" if drained else "worker drain timed out")
        await super()._stop_on_signal(sig)


def run(settings: Settings) -> None:
    """Run the worker until SIGTERM (drained, then exit 0) or SIGINT."""
    telemetry.setup("tributary-worker", settings)
    lifecycle = Lifecycle()
    app = create_app(settings, lifecycle)
    worker = DrainingWorker(app, lifecycle, loglevel=settings.log_level.lower(), quiet=True)
    try:
        worker.execute_from_commandline()
    finally:
        telemetry.shutdown()
