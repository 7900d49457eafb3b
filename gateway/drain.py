"""SIGTERM: readiness goes false first, then the server stops.

uvicorn stops listening as soon as SIGTERM arrives, so a load balancer that has not yet
seen a readiness change would send new connections to a closed port. Here the first
SIGTERM only marks the gateway draining (`/healthz/ready` 503, new writes 503
`shutting_down`) and keeps serving for `TRIBUTARY_SHUTDOWN_DRAIN_S`, long enough for a
readiness probe to see it; then uvicorn's own handler runs: it stops listening, lets
in-flight requests finish, and the lifespan's shutdown flushes the producer. A second
SIGTERM skips the rest of the wait. The `state.drain_hooks` run at the first SIGTERM (the
push sockets are closed with "reconnect" then, while new ones go to other nodes).
"""

from __future__ import annotations

import asyncio
import signal
import threading
from types import FrameType

from starlette.datastructures import State


def drain_first(state: State, drain_s: float) -> bool:
    """Put the draining step in front of the SIGTERM handler the server installed (call
    from the lifespan's start-up, which runs after uvicorn installs its handlers). False
    where there is no such handler to wrap (not the main thread, e.g. a test client)."""
    if threading.current_thread() is not threading.main_thread():
        return False
    server_handler = signal.getsignal(signal.SIGTERM)
    if not callable(server_handler):
        return False
    loop = asyncio.get_running_loop()

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        if state.draining:  # a second SIGTERM: stop now
            server_handler(signum, frame)
            return
        state.draining = True
        for hook in getattr(state, "drain_hooks", ()):
            loop.call_soon_threadsafe(hook)
        loop.call_soon_threadsafe(loop.call_later, drain_s, server_handler, signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)
    return True
