"""Redis from Debian's `redis-server`, with AOF persistence under the data dir."""

from __future__ import annotations

import shutil
import subprocess

import redis

from infra.local.process import Managed, ServiceError, port_in_use, wait_until
from tributary.settings import Settings


def managed(settings: Settings) -> Managed:
    return Managed("redis", settings.data_dir.resolve() / "run")


def ensure_installed() -> str:
    """Path of redis-server, installing Debian's package if it is missing and we are root."""
    path = shutil.which("redis-server")
    if path:
        return path
    if shutil.which("apt-get") is None:
        raise ServiceError("redis-server is not installed and apt-get is unavailable.")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "redis-server"]):
        result = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=600)
        if result.returncode != 0:
            raise ServiceError(f"`{' '.join(cmd)}` failed:\n{result.stderr[-2000:]}")
    path = shutil.which("redis-server")
    if path is None:
        raise ServiceError("redis-server still missing after apt-get install.")
    return path


def is_ready(settings: Settings) -> bool:
    try:
        return bool(redis.Redis.from_url(settings.redis_dsn, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def start(settings: Settings, timeout_s: float = 30.0) -> str:
    """Start redis-server unless it runs (or an external `TRIBUTARY_REDIS_URL` is set)."""
    if settings.redis_url:
        wait_until(lambda: is_ready(settings), f"redis at {settings.redis_url}", timeout_s)
        return f"redis (external) at {settings.redis_url}"
    proc = managed(settings)
    if proc.pid() is not None:
        wait_until(lambda: is_ready(settings), "redis", timeout_s, proc)
        return f"redis already running (pid {proc.pid()}) on 127.0.0.1:{settings.redis_port}"
    if is_ready(settings):
        return f"redis already running (not ours) on 127.0.0.1:{settings.redis_port}; reusing it"
    if port_in_use("127.0.0.1", settings.redis_port):
        raise ServiceError(
            f"redis: port 127.0.0.1:{settings.redis_port} is taken by another process; "
            "stop it or set TRIBUTARY_REDIS_PORT."
        )
    binary = ensure_installed()
    data = settings.data_dir.resolve() / "redis"
    data.mkdir(parents=True, exist_ok=True)
    proc.start(
        [
            binary,
            "--port",
            str(settings.redis_port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(data),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--maxmemory-policy",
            "noeviction",
            "--save",
            "",
            "--daemonize",
            "no",
        ]
    )
    wait_until(lambda: is_ready(settings), "redis", timeout_s, proc)
    return f"redis listening on 127.0.0.1:{settings.redis_port} (AOF in {data})"


def stop(settings: Settings) -> bool:
    return managed(settings).stop(timeout_s=10)
