"""The FastAPI application: wiring of routes, producer, Redis-backed guards and lifecycle."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from gateway import errors, health
from gateway.auth import Authenticator
from gateway.body_limit import BodyLimitMiddleware
from gateway.drain import drain_first
from gateway.fast_events import FastEvents
from gateway.idempotency import Idempotency
from gateway.limiter import Policy, RateLimiter
from gateway.producer import EventProducer
from gateway.push_hub import PushHub
from gateway.request_metrics import RequestMetrics
from gateway.routes import container_logs, desktops, events, jobs, push, schemas
from schemas.push import CLOSE_RECONNECT
from tributary import redis_client, telemetry
from tributary.limits import parse_windows
from tributary.logging import configure_logging
from tributary.settings import Settings, get_settings


def policies(settings: Settings) -> dict[str, Policy]:
    """Rate-limit policy per class of route (health and metrics are exempt)."""
    return {
        "events": Policy(
            "events", parse_windows(settings.rate_limits), settings.rate_limit_fail_open
        ),
        "containers": Policy(
            "containers",
            parse_windows(settings.rate_limits_containers),
            settings.rate_limit_containers_fail_open,
        ),
    }


def settle_heap() -> None:
    """Keep the garbage collector off the start-up heap and out of the request path.

    Everything loaded so far (FastAPI, pydantic schemas, modules) moves to the permanent
    generation, and young collections run every 50,000 allocations instead of 700.
    Measured under wrk (bench/RESULTS.md, issue 4): p99 94 ms -> 26-28 ms, 5-15 % more
    requests/s.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


class PushSockets:
    """`WS /v1/ws` straight to its handler, past the middleware and FastAPI's routing: each
    layer keeps a frame alive for a socket's whole life, and a gateway holds thousands."""

    def __init__(self, app: ASGIApp, api: FastAPI) -> None:
        self.app = app
        self.api = api
        self.state = api.state  # as on every layer `create_app` returns

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == push.PATH:
            scope["app"] = self.api
            await push.push(WebSocket(scope, receive, send))
            return
        await self.app(scope, receive, send)


def create_app(settings: Settings | None = None) -> PushSockets:
    """What uvicorn serves for `settings` (default: from the environment): the API, with
    the fast path for the plain `POST /v1/events` in front of it unless turned off, every
    request timed (`tributary_gateway_request_seconds`), and push sockets served apart."""
    api = create_api(settings or get_settings())
    fast = api.state.settings.gateway_fast_events
    return PushSockets(RequestMetrics(FastEvents(api, api.state) if fast else api, api.state), api)


def create_api(settings: Settings) -> FastAPI:
    """The FastAPI application: every route, its checks, and the lifecycle."""
    configure_logging(settings.log_level)
    client = redis_client.connect(settings, name="tributary-gateway")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        telemetry.setup("tributary-gateway", settings)
        await redis_client.initialize(client)
        app.state.producer.start()
        app.state.push_hub.start()
        drain_first(app.state, settings.shutdown_drain_s)
        settle_heap()
        yield
        # Shutdown (after the drain): in-flight sends are flushed.
        app.state.draining = True
        app.state.push_hub.close_all(CLOSE_RECONNECT, "gateway stopping: reconnect")
        await app.state.push_hub.stop()
        await app.state.producer.stop()
        await client.aclose()
        telemetry.shutdown()

    app = FastAPI(title="Tributary gateway", version="1", lifespan=lifespan)
    app.state.settings = settings
    app.state.draining = False
    app.state.redis = client
    app.state.producer = EventProducer(settings.kafka_bootstrap, settings.produce_timeout_s)
    app.state.auth = Authenticator(settings, client)
    app.state.push_hub = PushHub(
        client, settings.namespace, settings.push_redis_concurrency, settings.push_send_buffer_bytes
    )
    # At the first SIGTERM, push sockets are told to reconnect (to a node still serving).
    app.state.drain_hooks = [
        lambda: app.state.push_hub.close_all(CLOSE_RECONNECT, "draining: reconnect")
    ]
    app.state.limiter = RateLimiter(client, settings.namespace)
    app.state.policies = policies(settings)
    app.state.idempotency = Idempotency(client, settings.namespace, settings.idempotency_ttl_s)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    errors.install(app)
    app.include_router(health.router)
    app.include_router(events.router)
    app.include_router(jobs.router)
    app.include_router(container_logs.router)
    app.include_router(desktops.router)
    # noVNC for the desktop viewer page (npm `@novnc/novnc`, installed by `make setup`).
    app.mount("/static/novnc", StaticFiles(directory=desktops.NOVNC, check_dir=False), name="novnc")
    app.include_router(push.router)
    app.include_router(schemas.router)
    return app
