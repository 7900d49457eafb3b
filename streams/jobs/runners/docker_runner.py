"""Containers on a Docker engine: the container executor's side effects.

At-least-once made idempotent: the engine-side name derives from the container id
(the id of the command that asked for it), so a retried start finds the container it
already made instead of making a second, and a retried stop of a gone one is a no-op.
The docker SDK is synchronous; callers run these in a thread.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import docker
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import RequestException

from schemas.jobs import (
    LABEL_CONTAINER,
    LABEL_IDLE,
    LABEL_LIFETIME,
    LABEL_NAMESPACE,
    LABEL_USER,
    VNC_PORT,
    ContainerSpec,
    container_name,
)
from streams.jobs.runners.errors import RunnerError


class DockerRunner:
    def __init__(self, base_url: str, namespace: str) -> None:
        self._base_url = base_url
        self._namespace = namespace
        self._client: docker.DockerClient | None = None

    def _docker(self) -> docker.DockerClient:
        if self._client is None:
            try:
                self._client = docker.DockerClient(base_url=self._base_url, timeout=30)
            except DockerException as exc:
                raise RunnerError(
                    f"docker engine unreachable: {exc}", permanent=False, unreachable=True
                ) from exc
        return self._client

    def start(self, user_id: str, spec: ContainerSpec) -> dict[str, Any]:
        """Create and start (or find) the container; return what the user may see of it."""
        container_id = spec.container_id
        name = container_name(self._namespace, container_id)
        client = self._docker()
        try:
            try:
                container = client.containers.get(name)
            except NotFound:
                container = client.containers.create(
                    spec.image,
                    command=spec.command or None,
                    name=name,
                    init=True,
                    nano_cpus=int(spec.cpus * 1e9),
                    mem_limit=f"{spec.memory_mb}m",
                    memswap_limit=f"{spec.memory_mb}m",  # no swap: over the limit is an OOM
                    labels=labels(self._namespace, user_id, spec),
                    **self._network(spec),
                )
            if container.status != "running":
                container.start()
            container.reload()
            address = self._display_address(container) if spec.display else None
        except ImageNotFound as exc:
            raise RunnerError(f"image not found: {spec.image}", permanent=True) from exc
        except APIError as exc:
            raise RunnerError(str(exc), permanent=exc.is_client_error()) from exc
        except (DockerException, RequestException) as exc:
            raise _engine_error(exc) from exc
        info = {"name": name, "engine_id": container.id[:12], "state": container.status}
        return {**info, "address": address} if address else info

    @property
    def desktop_network(self) -> str:
        return f"trib-{self._namespace}-desktops"

    def _network(self, spec: ContainerSpec) -> dict[str, Any]:
        """No network, except for a desktop: a private bridge (no route out, nothing
        published) that the gateways' relay reaches."""
        if spec.display is None:
            return {"network_mode": "none"}
        try:
            self._docker().networks.get(self.desktop_network)
        except NotFound:
            self._docker().networks.create(self.desktop_network, driver="bridge", internal=True)
        size = {"WIDTH": str(spec.display.width), "HEIGHT": str(spec.display.height)}
        return {"network": self.desktop_network, "environment": size}

    def _display_address(self, container: Any, wait_s: float = 20.0) -> str:
        """The desktop's address once its VNC server answers (it starts after its display)."""
        networks = container.attrs.get("NetworkSettings", {}).get("Networks", {})
        address = str((networks.get(self.desktop_network) or {}).get("IPAddress") or "")
        if not address:
            raise RunnerError("desktop has no address on its network", permanent=False)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                with socket.create_connection((address, VNC_PORT), timeout=1) as probe:
                    if probe.recv(12).startswith(b"RFB "):
                        return address
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RunnerError(f"desktop display not ready after {wait_s:g}s", permanent=False)
            time.sleep(0.1)

    def stop(self, container_id: str) -> dict[str, Any]:
        """Stop and remove the container; one that is already gone is fine."""
        name = container_name(self._namespace, container_id)
        try:
            container = self._docker().containers.get(name)
            container.stop(timeout=5)
            container.remove(force=True)
        except NotFound:
            return {"name": name, "state": "removed", "already": True}
        except (DockerException, RequestException) as exc:
            raise _engine_error(exc) from exc
        return {"name": name, "state": "removed"}

    def ours(self) -> list[Any]:
        """Every container of this namespace on the engine, running or not."""
        filters = {"label": f"{LABEL_NAMESPACE}={self._namespace}"}
        try:
            return list(
                self._docker().containers.list(all=True, filters=filters, ignore_removed=True)
            )
        except (DockerException, RequestException) as exc:
            raise _engine_error(exc) from exc

    def events(self, since: int | None) -> Any:
        """The engine's stream of this namespace's container endings (a blocking iterator
        of dicts with a `close()`)."""
        filters = {
            "type": "container",
            "label": f"{LABEL_NAMESPACE}={self._namespace}",
            "event": ["die", "destroy", "oom"],
        }
        return self._docker().events(decode=True, filters=filters, since=since)


def labels(namespace: str, user_id: str, spec: ContainerSpec) -> dict[str, str]:
    """What the engine keeps of a container's owner and limits (read back by the watch)."""
    out = {LABEL_NAMESPACE: namespace, LABEL_USER: user_id, LABEL_CONTAINER: spec.container_id}
    if spec.max_lifetime_s:
        out[LABEL_LIFETIME] = str(spec.max_lifetime_s)
    if spec.idle_timeout_s:
        out[LABEL_IDLE] = str(spec.idle_timeout_s)
    return out


def _engine_error(exc: Exception) -> RunnerError:
    """A failed engine call. Unreachable when the engine cannot be reached (its socket
    gone, the connection refused or cut), not for an answer or a timeout from one that is
    up."""
    return RunnerError(
        f"docker engine: {exc}",
        permanent=False,
        unreachable=isinstance(exc, RequestsConnectionError),
    )
