"""Jaeger all-in-one (in-memory storage, UI and query API, OTLP receivers), built here from
Go modules with the Go toolchain and cached like the Kafka jars.

The build is a small module of ours that names `github.com/jaegertracing/jaeger/cmd/jaeger`
as a tool (`go get -tool`), then `go build` (about 5 minutes on 2 cores, once per cache).
Run with no configuration, the binary serves the UI and API on :16686 and takes OTLP on
:4317 (gRPC) and :4318 (HTTP); Tributary's processes send to the HTTP port
(`TRIBUTARY_OTLP_ENDPOINT`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx

from infra.local.process import Managed, ServiceError, port_in_use, run_or_fail, wait_until
from tributary.settings import Settings

VERSION = "1.75.0"
MODULE = "github.com/jaegertracing/jaeger"
UI_PORT = 16686
OTLP_HTTP_PORT = 4318
OTLP_ENDPOINT = f"http://127.0.0.1:{OTLP_HTTP_PORT}"
GO_HOMES = ("/usr/local/go/bin/go", "/usr/lib/go/bin/go")  # where PATH may not reach
QUERY_URL = f"http://127.0.0.1:{UI_PORT}"


def managed(settings: Settings) -> Managed:
    return Managed("jaeger", settings.data_dir.resolve() / "run")


def build_dir(settings: Settings) -> Path:
    return settings.cache_dir.expanduser() / f"jaeger-{VERSION}"


def ensure_built(settings: Settings, timeout_s: float = 1800) -> Path:
    """The jaeger binary, built first if the cache has none."""
    binary = build_dir(settings) / "jaeger"
    if binary.exists():
        return binary
    go = shutil.which("go") or next((g for g in GO_HOMES if Path(g).exists()), None)
    if go is None:
        raise ServiceError("jaeger is built with the Go toolchain: install Go (`go` on PATH)")
    where = build_dir(settings)
    where.mkdir(parents=True, exist_ok=True)
    if not (where / "go.mod").exists():
        run_or_fail([go, "mod", "init", "tributary.local/jaeger"], "go mod init", 60, cwd=where)
    tool = f"{MODULE}/cmd/jaeger"
    run_or_fail([go, "get", "-tool", f"{tool}@v{VERSION}"], f"go get {tool}", timeout_s, cwd=where)
    scratch = where / "jaeger.partial"
    run_or_fail([go, "build", "-o", str(scratch), tool], f"go build {tool}", timeout_s, cwd=where)
    scratch.rename(binary)  # whole, or not there: a build cut short is built again
    return binary


def is_ready() -> bool:
    try:
        return httpx.get(f"{QUERY_URL}/api/services", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def start(settings: Settings, timeout_s: float = 60.0) -> str:
    """Jaeger on its default ports, unless it already answers there."""
    if is_ready():
        return f"jaeger already running: UI {QUERY_URL}, OTLP {OTLP_ENDPOINT}"
    binary = ensure_built(settings)
    for port in (UI_PORT, OTLP_HTTP_PORT):
        if port_in_use("127.0.0.1", port):
            raise ServiceError(f"jaeger: port {port} is taken by another process")
    proc = managed(settings)
    proc.start([str(binary)])
    wait_until(is_ready, "jaeger", timeout_s, proc)
    return f"jaeger ready (pid {proc.pid()}): UI {QUERY_URL}, OTLP {OTLP_ENDPOINT}"


def stop(settings: Settings) -> bool:
    return managed(settings).stop()


if __name__ == "__main__":  # `make setup`: build it into the cache if it is not there
    print(ensure_built(Settings()))
