"""Entry point of the projector process (`tributary projector`)."""

from __future__ import annotations

import asyncio
import signal

import structlog
from aiohttp import web

from projections import api
from projections.clickhouse import connect
from projections.migrations import migrate
from projections.projector import Projector
from projections.push import PushProjector
from projections.status import StatusProjector
from tributary.gc_tuning import tune_for_throughput
from tributary.logging import configure_logging
from tributary.settings import Settings

log = structlog.get_logger(__name__)


async def serve(settings: Settings) -> None:
    """Migrate, serve queries and project until SIGTERM/SIGINT; flush before exit."""
    ch = connect(settings)
    applied = migrate(ch)
    log.info("clickhouse ready", backend=ch.backend, migrations_applied=applied)
    tune_for_throughput()
    projector = Projector(settings, ch)
    # No access log: health probes and queries would bury the projector's own lines.
    runner = web.AppRunner(api.build(projector), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.projector_host, settings.projector_port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    push = PushProjector(settings)
    status = StatusProjector(settings)
    try:
        await asyncio.gather(projector.run(stop), push.run(stop), status.run(stop))
    finally:
        await runner.cleanup()
        ch.close()


def run(settings: Settings) -> None:
    configure_logging(settings.log_level)
    asyncio.run(serve(settings))
