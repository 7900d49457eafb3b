"""The FastAPI application: wiring of routes, producer and lifecycle."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import ORJSONResponse

from gateway import errors, health
from gateway.body_limit import BodyLimitMiddleware
from gateway.producer import EventProducer
from gateway.routes import events
from tributary.logging import configure_logging
from tributary.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """A gateway app for `settings` (default: from the environment)."""
    settings = settings or get_settings()
    configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.producer.start()
        yield
        # Shutdown: readiness goes false first, then in-flight sends are flushed.
        app.state.draining = True
        await app.state.producer.stop()

    app = FastAPI(
        title="Tributary gateway",
        version="1",
        lifespan=lifespan,
        default_response_class=ORJSONResponse,
    )
    app.state.settings = settings
    app.state.draining = False
    app.state.producer = EventProducer(settings.kafka_bootstrap, settings.produce_timeout_s)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    errors.install(app)
    app.include_router(health.router)
    app.include_router(events.router)
    return app
