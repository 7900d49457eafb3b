"""Entry point of a stream worker process (`tributary worker`)."""

from __future__ import annotations

import faust

from streams.app import create_app
from tributary.settings import Settings


def run(settings: Settings) -> None:
    """Run the Faust worker until SIGTERM/SIGINT (which it handles gracefully)."""
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=settings.log_level.lower(), quiet=True)
    worker.execute_from_commandline()
