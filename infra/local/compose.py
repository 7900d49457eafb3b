"""docker-compose.yml run for real on this machine: our images, our engine, one command.

`up` builds the images (cached), makes the secrets compose requires (kept under the data
folder; the admin key is the local one, so `tributary query` works as with processes), runs
Debian's docker-compose against our dockerd with `infra/compose/local.yml` (ClickHouse's
server swapped for embedded chDB) and waits until the balancer answers ready. `down` removes
the project's containers, networks and volumes.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from infra.local import dockerd, images
from infra.local.process import ServiceError, wait_until
from tributary import admin
from tributary.credentials import hash_key
from tributary.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
FILES = (ROOT / "docker-compose.yml", ROOT / "infra" / "compose" / "local.yml")
PROJECT = "tributary"
BALANCER = "http://127.0.0.1:8080"
PROJECTOR = "http://127.0.0.1:8124"


def _secrets(settings: Settings) -> dict[str, str]:
    """The passwords compose requires, made once and kept (0600) beside the local admin key."""
    path = settings.data_dir.resolve() / "compose.env"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        made = {
            "CLICKHOUSE_PASSWORD": secrets.token_urlsafe(24),
            "TRIBUTARY_CLICKHOUSE_ANALYST_PASSWORD": secrets.token_urlsafe(24),
        }
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.writelines(f"{k}={v}\n" for k, v in made.items())
    found = dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    key = admin.ensure_local_key(settings)
    found["TRIBUTARY_ADMIN_KEY_SHA256"] = hash_key(key)
    found["TRIBUTARY_ADMIN_KEY"] = key  # the gateways' (the push resume's ClickHouse fill)
    return found


def compose(settings: Settings, *args: str, timeout_s: float = 900) -> str:
    """Run docker-compose on our files and engine; its output, or ServiceError."""
    binary = shutil.which("docker-compose")
    if binary is None:
        raise ServiceError("docker-compose is not installed: apt-get install docker-compose")
    files = [a for f in FILES for a in ("-f", str(f))]
    env = {
        **os.environ,
        **_secrets(settings),
        "DOCKER_HOST": settings.docker_dsn,
        "TRIBUTARY_DOCKER_SOCKET": settings.docker_dsn.removeprefix("unix://"),
    }
    done = subprocess.run(
        [binary, "-p", PROJECT, *files, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if done.returncode != 0:
        raise ServiceError(
            f"docker-compose {' '.join(args)}: {(done.stderr or done.stdout)[-3000:]}"
        )
    return done.stdout + done.stderr


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def up(settings: Settings, echo: Callable[[str], None] = print) -> dict[str, float]:
    """Images built, the topology up and ready behind the balancer; seconds per step."""
    timings: dict[str, float] = {}
    started = time.monotonic()
    echo(dockerd.start(settings))
    images.build(settings, echo=echo)
    timings["images"] = time.monotonic() - started
    started = time.monotonic()
    compose(settings, "up", "-d", "--no-build")
    ready = lambda: _ready(BALANCER) and _ready(PROJECTOR) and not _unhealthy(settings)  # noqa: E731
    wait_until(ready, "compose topology", 600)
    timings["ready"] = time.monotonic() - started
    echo(f"compose topology ready: {BALANCER} (gateways), {PROJECTOR} (projector)")
    return timings


def down(settings: Settings) -> str:
    """Stop and remove the project's containers, networks and volumes."""
    return compose(settings, "down", "-v", "--remove-orphans", timeout_s=300)


def _docker(settings: Settings, *args: str) -> str:
    env = {**os.environ, "DOCKER_HOST": settings.docker_dsn}
    done = subprocess.run(["docker", *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise ServiceError(f"docker {' '.join(args[:2])}: {done.stderr[-2000:]}")
    return done.stdout


def _unhealthy(settings: Settings) -> list[str]:
    """The project's containers not healthy yet: starting, unhealthy, or exited (a crash;
    `topics` alone is meant to exit, with 0). Raises ServiceError on a crashed one."""
    label = f"label=com.docker.compose.project={PROJECT}"
    out = _docker(settings, "ps", "-a", "--filter", label, "--format", "{{.Names}}|{{.Status}}")
    waiting = []
    for line in out.splitlines():
        name, _, status = line.partition("|")
        if status.startswith("Exited"):
            if not (name.endswith("_topics_1") and status.startswith("Exited (0)")):
                raise ServiceError(f"{name} {status}: docker logs {name}")
        elif "starting" in status or "unhealthy" in status or not status.startswith("Up"):
            waiting.append(line)
    return waiting


def leftovers(settings: Settings) -> list[str]:
    """The project's containers, networks and volumes still on the engine, and users'
    containers the workers started (label `tributary.container`)."""
    label = f"label=com.docker.compose.project={PROJECT}"
    found = []
    for kind in ("container", "network", "volume"):
        listing = [kind, "ls", "-q", "--filter", label] + (["-a"] if kind == "container" else [])
        found += [f"{kind} {line}" for line in _docker(settings, *listing).split()]
    users = _docker(settings, "container", "ls", "-aq", "--filter", "label=tributary.container")
    return found + [f"user container {line}" for line in users.split()]


def volumes(settings: Settings) -> set[str]:
    """Every volume on the engine (anonymous ones too: the images' VOLUME folders)."""
    return set(_docker(settings, "volume", "ls", "-q").split())
