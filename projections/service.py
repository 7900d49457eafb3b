"""Entry point of the projector process (`tributary projector`)."""

from __future__ import annotations

import asyncio
import signal

import structlog

from projections import api
from projections.analyst_queries import AnalystQueries, analyst_access
from projections.clickhouse import connect
from projections.history import History
from projections.migrations import migrate
from projections.projector import Projector
from projections.push import PushProjector
from projections.status import StatusProjector
from tributary import admin, telemetry
from tributary.gc_tuning import tune_for_throughput
from tributary.http_edge import listen
from tributary.logging import configure_logging
from tributary.settings import Settings

log = structlog.get_logger(__name__)


async def serve(settings: Settings) -> None:
    """Migrate, serve queries and project until SIGTERM/SIGINT; flush before exit."""
    telemetry.setup("tributary-projector", settings)
    hashes = admin.server_hashes(settings, settings.projector_host)
    ch = connect(settings)
    applied = migrate(ch)
    if ch.backend == "server":
        for statement in analyst_access(settings):
            ch.command(statement)
    log.info("clickhouse ready", backend=ch.backend, migrations_applied=applied)
    tune_for_throughput()
    projector = Projector(settings, ch)
    queries = AnalystQueries(settings, ch)
    history = History(settings)
    app = api.build(projector, queries, hashes, history)
    server, serving = await listen(app, settings.projector_host, settings.projector_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def drain() -> None:
        """Not ready from now (the balancer and the probes see it), then a last flush."""
        projector.ready = False
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, drain)
    push = PushProjector(settings)
    status = StatusProjector(settings)
    try:
        await asyncio.gather(projector.run(stop), push.run(stop), status.run(stop))
    finally:
        server.should_exit = True
        await serving
        queries.close()
        history.close()
        telemetry.shutdown()
        ch.close()


def run(settings: Settings) -> None:
    configure_logging(settings.log_level)
    asyncio.run(serve(settings))
