"""Where the single-event gateway's time goes: its per-request work without FastAPI.

An experiment, not a second gateway: `app` is an ASGI app doing what `POST /v1/events` does
at its core (read the body, validate `EventIn`, authenticate the API key through the
gateway's `Authenticator`, build the CloudEvent, check the rate limit in Redis, produce and
wait for the ack), served by uvicorn the way the gateway is, under the same wrk load as
`bench.gateway`. `BENCH_LEAN_SKIP` (comma-separated: `limit`, `kafka`) leaves steps out, so
one run shows each step's share. (What it showed led to the gateway's own fast path,
`gateway/fast_events.py`, and to coalescing the limit checks and the sends.) Against a
running broker and Redis:

    .venv/bin/python -m bench.gateway_lean
"""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

import orjson
import typer
from starlette.requests import HTTPConnection

from bench.gateway import wrk_on_asgi
from cli.demo import api_keys
from gateway.app import policies
from gateway.auth import Authenticator
from gateway.limiter import RateLimiter
from gateway.limiter import headers as limit_headers
from gateway.producer import EventProducer
from gateway.routes.events import to_event
from infra.local import kafka
from schemas.api import Accepted, EventIn
from schemas.topics import INGEST
from tributary import redis_client
from tributary.settings import Settings, get_settings

SKIP = set(filter(None, os.environ.get("BENCH_LEAN_SKIP", "").split(",")))
_parts: dict[str, Any] = {}


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            s = get_settings()
            client = redis_client.connect(s)
            _parts.update(
                auth=Authenticator(s, client),
                limiter=RateLimiter(client, s.namespace),
                policy=policies(s)["events"],
                producer=EventProducer(s.kafka_bootstrap, s.produce_timeout_s),
                topic=INGEST.physical(s.namespace),
            )
            _parts["producer"].start()
            await send({"type": "lifespan.startup.complete"})
        else:
            await _parts["producer"].stop()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    headers: list[tuple[bytes, bytes]] = [(b"content-type", b"application/json")]
    answer = b""
    if body:  # an empty POST is the readiness probe
        item = EventIn.model_validate(orjson.loads(body))
        event = to_event(item, await _parts["auth"](HTTPConnection(scope)), None)
        if "limit" not in SKIP:
            decision = await _parts["limiter"].check(event.subject, _parts["policy"], 1)
            limits = limit_headers(decision).items()
            headers += [(k.lower().encode(), v.encode()) for k, v in limits]
        if "kafka" in SKIP:
            accepted = Accepted(id=event.id, topic=_parts["topic"], partition=0, offset=0)
        else:
            accepted = await _parts["producer"].send(_parts["topic"], event, {})
        answer = orjson.dumps(accepted.model_dump())
    await send({"type": "http.response.start", "status": 202, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


def measure(settings: Settings, key: str, skip: str, seconds: int, connections: int) -> float:
    env = {
        **os.environ,
        "TRIBUTARY_NAMESPACE": settings.namespace,
        "TRIBUTARY_RATE_LIMITS": settings.rate_limits,
        "TRIBUTARY_LOG_LEVEL": "WARNING",
        "BENCH_LEAN_SKIP": skip,
    }
    rate, _, _ = wrk_on_asgi("bench.gateway_lean:app", key, seconds, connections, env)
    return rate


def main(seconds: int = 10, connections: int = 32) -> None:
    settings = Settings(namespace=f"lean-{uuid.uuid4().hex[:6]}", rate_limits="1000000/s")
    kafka.ensure_topics(settings)
    key = asyncio.run(api_keys(settings, ["bench-user"]))["bench-user"]
    print(f"| lean path, wrk {connections} connections | requests/s |\n|---|---|")
    for skip, label in (
        ("", "everything: auth, validate, rate limit (Redis), produce and ack (Kafka)"),
        ("limit", "without the rate limit"),
        ("kafka", "without the produce"),
        ("limit,kafka", "without either: auth (cached key), validation, the CloudEvent"),
    ):
        print(f"| {label} | {measure(settings, key, skip, seconds, connections):,.0f} |")


if __name__ == "__main__":
    typer.run(main)
