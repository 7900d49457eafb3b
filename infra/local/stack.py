"""The whole local stack: services (Kafka, Redis), topics, then Tributary's own processes.

`up` is idempotent: anything already running is reused, so a second `up` only
waits for readiness. Each process gets the same settings through `TRIBUTARY_*` env.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import httpx

from infra.local import dockerd, haproxy, jaeger, kafka, redis, triton
from infra.local.process import Managed, ServiceError, family, port_in_use, wait_until
from tributary.settings import SECRETS, Settings


@dataclass(frozen=True)
class AppProcess:
    """One of Tributary's own processes: its CLI subcommand and readiness URL."""

    name: str
    command: str
    ready_url: Callable[[Settings], str]
    port: Callable[[Settings], int]


APPS: tuple[AppProcess, ...] = (
    AppProcess(
        "projector",
        "projector",
        lambda s: f"{s.projector_url}/healthz/ready",
        lambda s: s.projector_port,
    ),
    AppProcess(
        "worker",
        "worker",
        lambda s: f"http://127.0.0.1:{s.worker_web_port}/healthz/ready",
        lambda s: s.worker_web_port,
    ),
    AppProcess(
        "gateway", "gateway", lambda s: f"{s.gateway_url}/healthz/ready", lambda s: s.gateway_port
    ),
)


PROJECTOR, WORKER, GATEWAY = APPS
# Beside the data flow, not in it: started by `up` last, not by the tests' app stacks.
DASHBOARD = AppProcess(
    "dashboard",
    "dashboard",
    lambda s: f"{s.dashboard_url}/healthz/ready",
    lambda s: s.dashboard_port,
)


def replicas(settings: Settings) -> list[tuple[AppProcess, Settings]]:
    """Every process `tributary up` runs, each with its own settings: the projector,
    `settings.workers` workers (worker n: `<worker_name>-n`, web port + n-1) and
    `settings.gateways` gateways (several: behind haproxy, on `haproxy.gateway_ports`)."""
    procs = [(PROJECTOR, settings)]
    for n in range(1, settings.workers + 1):
        if n == 1:
            procs.append((WORKER, settings))
            continue
        update = {
            "worker_name": f"{settings.worker_name}-{n}",
            "worker_web_port": settings.worker_web_port + n - 1,
        }
        procs.append((replace(WORKER, name=f"worker-{n}"), settings.model_copy(update=update)))
    if settings.gateways == 1:
        return [*procs, (GATEWAY, settings)]
    for n, port in enumerate(haproxy.gateway_ports(settings), start=1):
        procs.append(
            (
                replace(GATEWAY, name=f"gateway-{n}"),
                settings.model_copy(update={"gateway_port": port}),
            )
        )
    return procs


def settings_env(settings: Settings) -> dict[str, str]:
    """`settings` as `TRIBUTARY_*` variables, so a child process reads the same values.
    Credentials go as files (`TRIBUTARY_<FIELD>_FILE`, readable by this user only), not as
    values: a process's environment is readable in /proc by anyone running as its user."""
    env = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if name in SECRETS:
            if value:
                env[f"TRIBUTARY_{name.upper()}_FILE"] = str(secret_file(settings, str(value)))
        else:
            env[f"TRIBUTARY_{name.upper()}"] = str(value)
    return env


def secret_file(settings: Settings, value: str) -> Path:
    """A file holding `value`, mode 0600, under `<data_dir>/run/secrets` (named by its hash,
    so stacks with different secrets side by side do not clash)."""
    folder = settings.data_dir.resolve() / "run" / "secrets"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / hashlib.sha256(value.encode()).hexdigest()[:24]
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(value)
    return path


def managed(settings: Settings, app: AppProcess) -> Managed:
    return Managed(app.name, settings.data_dir.resolve() / "run")


def url_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def url_answer(url: str) -> str:
    """What `url` answers now, in one line: for a readiness timeout's message."""
    try:
        response = httpx.get(url, timeout=2)
    except httpx.HTTPError as exc:
        return f"GET {url}: {exc!r}"
    return f"GET {url}: {response.status_code} {response.text[:500]}"


def start_app(settings: Settings, app: AppProcess, timeout_s: float = 120.0) -> str:
    proc = managed(settings, app)
    url = app.ready_url(settings)
    if proc.pid() is None:
        port = app.port(settings)
        # A just-killed multi-threaded process can hold its socket a moment after it died.
        deadline = time.monotonic() + 10
        while port_in_use("127.0.0.1", port):
            if time.monotonic() > deadline:
                raise ServiceError(
                    f"{app.name}: port 127.0.0.1:{port} is taken by another process."
                )
            time.sleep(0.1)
        proc.start([sys.executable, "-m", "cli", app.command], env=settings_env(settings))
    wait_until(lambda: url_ok(url), app.name, timeout_s, proc, why=lambda: url_answer(url))
    return f"{app.name} ready (pid {proc.pid()}): {url.rsplit('/healthz', 1)[0]}"


def up(
    settings: Settings, echo: Callable[[str], None] = print, jobs: bool = True
) -> dict[str, float]:
    """Start everything (without dockerd and Triton unless `jobs`); return seconds each
    step took."""
    timings: dict[str, float] = {}
    steps: list[tuple[str, Callable[[], str]]] = [
        ("kafka", lambda: kafka.start(settings)),
        ("redis", lambda: redis.start(settings)),
        ("topics", lambda: "topics: " + ", ".join(kafka.ensure_topics(settings))),
    ]
    if settings.otlp_endpoint == jaeger.OTLP_ENDPOINT:  # tracing, to a Jaeger of ours
        steps.append(("jaeger", lambda: jaeger.start(settings)))
    if jobs:
        steps += [
            ("dockerd", lambda: dockerd.start(settings)),
            ("triton", lambda: triton.start(settings)),
        ]
    steps += [(a.name, lambda a=a, s=s: start_app(s, a)) for a, s in replicas(settings)]  # type: ignore[misc]
    if settings.gateways > 1:
        steps.append(("haproxy", lambda: haproxy.start(settings)))
    steps.append(("dashboard", lambda: start_app(settings, DASHBOARD)))
    for name, step in steps:
        started = time.monotonic()
        echo(step())
        timings[name] = time.monotonic() - started
    return timings


def down(settings: Settings, echo: Callable[[str], None] = print) -> None:
    """Stop the balancer and Tributary's processes first (they flush), then the services."""
    if haproxy.stop(settings):
        echo("stopped haproxy")
    # Every replica with a pid file, also those of an `up` with more than `settings` says.
    run = settings.data_dir / "run"
    for name in ("dashboard", "gateway", "worker", "projector"):
        for proc in family(run, name):
            if proc.stop(timeout_s=40):
                echo(f"stopped {proc.name}")
    for name, module in (
        ("triton", triton),
        ("dockerd", dockerd),
        ("jaeger", jaeger),
        ("redis", redis),
    ):
        if module.stop(settings):
            echo(f"stopped {name}")
    if kafka.stop(settings):
        echo("stopped kafka")


def status(settings: Settings) -> list[tuple[str, str]]:
    """(name, state) of every service and process."""
    rows = [
        ("kafka", "ready" if kafka.is_ready(settings) else "down"),
        ("redis", "ready" if redis.is_ready(settings) else "down"),
        ("dockerd", "ready" if dockerd.is_ready(settings) else "down"),
        ("triton", "ready" if triton.is_ready(settings) else "down"),
    ]
    for app, own in replicas(settings):
        pid = managed(own, app).pid()
        state = "down" if pid is None else ("ready" if url_ok(app.ready_url(own)) else "starting")
        rows.append((app.name, state))
    if settings.gateways > 1:
        rows.append(("haproxy", "ready" if haproxy.is_ready(settings) else "down"))
    pid = managed(settings, DASHBOARD).pid()
    rows.append(("dashboard", "down" if pid is None else "ready"))
    return rows
