"""docker-compose.yml run for real on this machine: our images, our engine, one command.

`up` builds the images (cached), makes the secret files compose mounts (`write_secrets`, kept
under the data folder; the admin key is the local one, so `tributary query` works as with
processes), runs
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


# The compose secrets (docker-compose.yml `secrets:`), each a file in one folder
# (`TRIBUTARY_SECRETS_DIR`), mounted at /run/secrets/<name> where a service needs it.
SECRET_FILES = (
    "admin-key",
    "admin-key-sha256",
    "clickhouse-password",
    "clickhouse-analyst-password",
)


def write_secrets(folder: Path, admin_key: str | None = None) -> list[str]:
    """The secret files compose mounts, made where missing (0600, in a 0700 folder): a new
    admin key (or `admin_key`) and its SHA-256, and random ClickHouse passwords. Existing
    files are kept. Returns the names made."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    key_file = folder / "admin-key"
    key = key_file.read_text().strip() if key_file.exists() else (admin_key or admin.new_key())
    values = {
        "admin-key": key,
        "admin-key-sha256": hash_key(key),
        "clickhouse-password": secrets.token_urlsafe(24),
        "clickhouse-analyst-password": secrets.token_urlsafe(24),
    }
    made = []
    for name in SECRET_FILES:
        path = folder / name
        if path.exists():
            continue
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(values[name])
        made.append(name)
    return made


def secrets_dir(settings: Settings) -> Path:
    """`up`'s secret files: under the data folder, with the local admin key."""
    folder = settings.data_dir.resolve() / "compose-secrets"
    write_secrets(folder, admin.ensure_local_key(settings))
    return folder


def compose(settings: Settings, *args: str, timeout_s: float = 900) -> str:
    """Run docker-compose on our files and engine; its output, or ServiceError."""
    binary = shutil.which("docker-compose")
    if binary is None:
        raise ServiceError("docker-compose is not installed: apt-get install docker-compose")
    files = [a for f in FILES for a in ("-f", str(f))]
    env = {
        **os.environ,
        "TRIBUTARY_SECRETS_DIR": str(secrets_dir(settings)),
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
