"""haproxy (Debian's package) in front of the gateways, when `tributary up` starts several.

Least connections; WebSocket upgrades pass through (`timeout tunnel`); each gateway is
health-checked on `/healthz/ready` every second, so a draining gateway (readiness 503
first, `gateway/drain.py`) leaves rotation before it stops listening. docker-compose.yml
mounts the same configuration (`infra/haproxy/haproxy.cfg`, the compose form of `config`).
"""

from __future__ import annotations

import shutil

import httpx

from infra.local.process import Managed, ServiceError, port_in_use, run_or_fail, wait_until
from tributary.settings import Settings


def gateway_ports(settings: Settings) -> list[int]:
    """Where the gateways listen: `gateway_port` alone, or behind the balancer on the next
    ports."""
    if settings.gateways == 1:
        return [settings.gateway_port]
    return [settings.gateway_port + n for n in range(1, settings.gateways + 1)]


def config(listen: str, servers: list[tuple[str, str]], request_timeout_s: float = 10.0) -> str:
    """A haproxy configuration: `listen` (host:port) in front of `servers` (name, host:port);
    a request's headers must arrive within `request_timeout_s` (the gateways' own limit)."""
    lines = [
        "global",
        # Two descriptors a connection: within the 20,000 this machine allows a process.
        "    maxconn 8000",
        "defaults",
        "    mode http",
        "    option http-keep-alive",
        "    timeout connect 2s",
        "    timeout client 30s",
        "    timeout server 30s",
        f"    timeout http-request {round(request_timeout_s * 1000)}ms",
        # An upgraded WebSocket stays open while either side talks within the hour.
        "    timeout tunnel 1h",
        "    retries 2",
        "    option redispatch",
        "frontend gateways",
        f"    bind {listen}",
        "    default_backend gateways",
        "backend gateways",
        "    balance leastconn",
        "    option httpchk GET /healthz/ready",
        "    http-check expect status 200",
        # A gateway that stops answering, or answers 503 while it drains, is out in 2 s.
        "    default-server inter 1s fall 2 rise 2",
    ]
    lines += [f"    server {name} {address} check" for name, address in servers]
    return "\n".join(lines) + "\n"


def managed(settings: Settings) -> Managed:
    return Managed("haproxy", settings.data_dir.resolve() / "run")


def is_ready(settings: Settings) -> bool:
    try:
        return httpx.get(f"{settings.gateway_url}/healthz/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def start(settings: Settings, timeout_s: float = 30.0) -> str:
    """Start haproxy on `gateway_port` in front of the gateways (they run already)."""
    binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not shutil.which(binary):
        raise ServiceError("haproxy is not installed: `apt-get install -y haproxy`.")
    proc = managed(settings)
    if proc.pid() is None:
        if port_in_use(settings.gateway_host, settings.gateway_port):
            raise ServiceError(f"haproxy: {settings.gateway_url} is taken by another process.")
        home = settings.data_dir.resolve() / "haproxy"
        home.mkdir(parents=True, exist_ok=True)
        servers = [
            (f"gateway-{n}", f"127.0.0.1:{port}")
            for n, port in enumerate(gateway_ports(settings), start=1)
        ]
        cfg = home / "haproxy.cfg"
        listen = f"{settings.gateway_host}:{settings.gateway_port}"
        cfg.write_text(config(listen, servers, settings.http_request_timeout_s))
        run_or_fail([binary, "-c", "-f", str(cfg)], "haproxy's check of its configuration", 30)
        proc.start([binary, "-db", "-f", str(cfg)])  # -db: in the foreground, for the pid file
    wait_until(lambda: is_ready(settings), "haproxy", timeout_s, proc)
    return (
        f"haproxy ready (pid {proc.pid()}): {settings.gateway_url} -> {settings.gateways} gateways"
    )


def stop(settings: Settings) -> bool:
    return managed(settings).stop(timeout_s=10)
