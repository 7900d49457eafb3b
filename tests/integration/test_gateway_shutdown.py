"""SIGTERM under load: readiness goes false while the gateway still serves, in-flight
requests finish, every 202 is on the topic, exit 0 within 30 s."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid

import httpx
import pytest

from infra.local import stack
from infra.local.process import free_port, wait_until
from schemas.envelope import header_value
from schemas.topics import INGEST
from tests.integration.kafka_helpers import read_all
from tributary.settings import Settings

pytestmark = pytest.mark.integration


async def hammer(url: str, run: str, stop_at: float) -> list[tuple[int | None, str | None]]:
    """8 clients posting until `stop_at`; (status or None for a refused connection, event id)."""
    results: list[tuple[int | None, str | None]] = []

    async def client_loop(n: int) -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            i = 0
            while time.monotonic() < stop_at:
                body: dict[str, object] = {
                    "source": f"tests/{run}",
                    "type": "t.shutdown",
                    "subject": f"u{n}",
                }
                body["data"] = {"i": i}
                i += 1
                try:
                    response = await client.post(f"{url}/v1/events", json=body)
                except httpx.TransportError:
                    results.append((None, None))
                    await asyncio.sleep(0.05)
                    continue
                event_id = response.json().get("id") if response.status_code == 202 else None
                results.append((response.status_code, event_id))

    await asyncio.gather(*(client_loop(n) for n in range(8)))
    return results


def test_sigterm_drains_flushes_and_exits_zero(services: Settings, tmp_path: object) -> None:
    settings = services.model_copy(
        update={"gateway_port": free_port(), "auth_enabled": False, "shutdown_drain_s": 2.0}
    )
    run = uuid.uuid4().hex[:8]
    log = open(f"{tmp_path}/gateway.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "gateway"],
        env={**os.environ, **stack.settings_env(settings)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: stack.url_ok(f"{settings.gateway_url}/healthz/ready"), "gateway", 60)
        warm = {"source": f"tests/{run}-warm", "type": "t.warm", "subject": "u0"}
        assert httpx.post(f"{settings.gateway_url}/v1/events", json=warm, timeout=30).is_success

        async def scenario() -> tuple[list[tuple[int | None, str | None]], httpx.Response, float]:
            load = asyncio.create_task(hammer(settings.gateway_url, run, time.monotonic() + 4))
            await asyncio.sleep(1.5)
            proc.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            await asyncio.sleep(0.5)
            # Still listening, no longer ready: the load balancer's cue.
            async with httpx.AsyncClient(timeout=5) as client:
                ready = await client.get(f"{settings.gateway_url}/healthz/ready")
            await asyncio.to_thread(proc.wait, 35)
            return await load, ready, time.monotonic() - signalled

        results, ready, exit_s = asyncio.run(scenario())
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    assert proc.returncode == 0
    assert (ready.status_code, ready.json()["checks"]["draining"]) == (503, "yes")
    assert settings.shutdown_drain_s <= exit_s < 30
    statuses = {status for status, _ in results}
    # Before: 202. While draining: 503 (shutting_down). After: connection refused.
    assert statuses <= {202, 503, None}, statuses
    accepted = {event_id for status, event_id in results if status == 202}
    assert len(accepted) > 20
    on_topic = {
        header_value(r.headers, "ce_id")
        for r in asyncio.run(read_all(settings, INGEST.physical(settings.namespace)))
        if header_value(r.headers, "ce_source") == f"tests/{run}"
    }
    assert accepted <= on_topic, f"{len(accepted - on_topic)} accepted events are not on the topic"
