"""Redis from Debian's `redis-server`, with AOF persistence under the data dir."""

from __future__ import annotations

import shutil
from functools import partial
from pathlib import Path

import redis

from infra.local.process import Managed, ServiceError, family, port_in_use, run_or_fail, wait_until
from tributary.settings import Settings


def ports(settings: Settings) -> list[int]:
    """The local nodes' ports: one, or the three masters of a Redis Cluster."""
    return [settings.redis_port + n for n in range(3 if settings.redis_cluster else 1)]


def managed(settings: Settings, port: int | None = None) -> Managed:
    """Node `port`'s process: the first is `redis`, as a single Redis always was."""
    n = 0 if port is None else port - settings.redis_port
    return Managed("redis" if n == 0 else f"redis-{n + 1}", settings.data_dir.resolve() / "run")


def ensure_installed() -> str:
    """Path of redis-server, installing Debian's package if it is missing and we are root."""
    path = shutil.which("redis-server")
    if path:
        return path
    if shutil.which("apt-get") is None:
        raise ServiceError("redis-server is not installed and apt-get is unavailable.")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "redis-server"]):
        run_or_fail(cmd, f"`{' '.join(cmd)}`", 600)
    path = shutil.which("redis-server")
    if path is None:
        raise ServiceError("redis-server still missing after apt-get install.")
    return path


def is_ready(settings: Settings) -> bool:
    """Every node answers; a cluster's slots are all served (`cluster_state:ok`)."""
    if not settings.redis_url and not all(_answers(port) for port in ports(settings)[1:]):
        return False
    try:
        client = redis.Redis.from_url(settings.redis_dsn, socket_timeout=1)
        if not settings.redis_cluster:
            return bool(client.ping())
        return bool(client.cluster("info")["cluster_state"] == "ok")
    except redis.RedisError:
        return False


def start(settings: Settings, timeout_s: float = 30.0) -> str:
    """Start redis-server unless it runs (or an external `TRIBUTARY_REDIS_URL` is set);
    with `redis_cluster`, three masters that share the 16,384 slots."""
    if settings.redis_url:
        wait_until(lambda: is_ready(settings), f"redis at {settings.redis_url}", timeout_s)
        return f"redis (external) at {settings.redis_url}"
    if is_ready(settings):
        return f"redis already running on 127.0.0.1:{settings.redis_port}"
    binary = ensure_installed()
    for port in ports(settings):
        if managed(settings, port).pid() is None:
            _launch(settings, binary, port)
    for port in ports(settings):
        proc = managed(settings, port)
        wait_until(partial(_answers, port), f"redis on {port}", timeout_s, proc)
    if settings.redis_cluster:
        _form_cluster(settings, timeout_s)
        return f"redis cluster of 3 masters on 127.0.0.1:{', '.join(map(str, ports(settings)))}"
    data = _data(settings, settings.redis_port)
    return f"redis listening on 127.0.0.1:{settings.redis_port} (AOF in {data})"


def _data(settings: Settings, port: int) -> Path:
    root = settings.data_dir.resolve()
    return root / "redis" if port == settings.redis_port else root / f"redis-{port}"


def _answers(port: int) -> bool:
    try:
        return bool(redis.Redis(port=port, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def _launch(settings: Settings, binary: str, port: int) -> None:
    if port_in_use("127.0.0.1", port):
        raise ServiceError(
            f"redis: port 127.0.0.1:{port} is taken by another process; "
            "stop it or set TRIBUTARY_REDIS_PORT."
        )
    data = _data(settings, port)
    data.mkdir(parents=True, exist_ok=True)
    cluster = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
    managed(settings, port).start(
        [
            binary,
            "--port",
            str(port),
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
            *(cluster if settings.redis_cluster else []),
        ]
    )


def _form_cluster(settings: Settings, timeout_s: float) -> None:
    """Give the three masters the slots (once: a formed cluster keeps its nodes.conf)."""
    first = redis.Redis(port=settings.redis_port, socket_timeout=2)
    if int(first.cluster("info")["cluster_known_nodes"]) < len(ports(settings)):
        nodes = [f"127.0.0.1:{port}" for port in ports(settings)]
        create = ["redis-cli", "--cluster", "create", *nodes, "--cluster-replicas", "0"]
        run_or_fail([*create, "--cluster-yes"], "redis cluster create", 60)
    wait_until(lambda: is_ready(settings), "redis cluster", timeout_s)


def stop(settings: Settings) -> bool:
    """Stop every node of the data folder (a cluster's too, whatever `settings` says now)."""
    return any([proc.stop(timeout_s=10) for proc in family(settings.data_dir / "run", "redis")])
