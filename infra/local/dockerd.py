"""A Docker engine of our own: Debian's `dockerd` with its own data, exec root and socket.

No bridge and no iptables (containers get `--network none`), so it touches nothing
of the host's networking. There is no registry here, so the base image is made
locally: `docker import` of a rootfs holding Debian's static busybox.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager

import docker
from docker.errors import DockerException, ImageNotFound

from infra.local.process import Managed, ServiceError, wait_until
from tributary.settings import Settings

BUSYBOX = "/bin/busybox"
APPLETS = ("sh", "sleep", "echo", "cat", "ls", "true", "false", "env", "date")


def managed(settings: Settings) -> Managed:
    return Managed("dockerd", settings.data_dir.resolve() / "run")


@contextmanager
def client(settings: Settings) -> Iterator[docker.DockerClient]:
    """A client of the engine, closed on the way out (it holds a unix socket open)."""
    engine = docker.DockerClient(base_url=settings.docker_dsn, timeout=10)
    try:
        yield engine
    finally:
        engine.close()


def is_ready(settings: Settings) -> bool:
    dsn = settings.docker_dsn
    if dsn.startswith("unix://") and not os.path.exists(dsn.removeprefix("unix://")):
        # Not up yet. (Asking anyway would leak a socket per poll: docker-py does not close
        # the socket of a unix connect that fails.)
        return False
    try:
        with client(settings) as engine:
            return bool(engine.ping())
    except DockerException:
        return False


def start(settings: Settings, timeout_s: float = 60.0) -> str:
    """Start dockerd unless it answers (or an external `TRIBUTARY_DOCKER_HOST` is set)."""
    if settings.docker_host is None:
        proc = managed(settings)
        if proc.pid() is None and not is_ready(settings):
            binary = shutil.which("dockerd")
            if binary is None:
                raise ServiceError("dockerd is not installed: apt-get install docker.io")
            if os.geteuid() != 0:
                raise ServiceError("dockerd must run as root here (or set TRIBUTARY_DOCKER_HOST).")
            root = settings.data_dir.resolve() / "docker"
            root.mkdir(parents=True, exist_ok=True)
            proc.start(
                [
                    binary,
                    f"--data-root={root / 'data'}",
                    f"--exec-root={root / 'exec'}",
                    f"--pidfile={root / 'dockerd.pid'}",
                    f"--host={settings.docker_dsn}",
                    "--bridge=none",
                    "--iptables=false",
                    "--ip-masq=false",
                ]
            )
        wait_until(lambda: is_ready(settings), "dockerd", timeout_s, proc)
    elif not is_ready(settings):
        raise ServiceError(f"docker engine at {settings.docker_host} does not answer.")
    ensure_base_image(settings)
    return f"dockerd ready at {settings.docker_dsn} (image {settings.docker_base_image})"


def stop(settings: Settings) -> bool:
    """Remove Tributary's containers (at once: a graceful engine stop waits 10 s for each),
    then stop the engine. An engine we did not start is left alone."""
    proc = managed(settings)
    if proc.pid() is None:
        return False
    try:
        with client(settings) as engine:
            for container in engine.containers.list(
                all=True, filters={"label": "tributary.container"}
            ):
                container.remove(force=True)
    except DockerException:
        pass  # the engine is already going; stopping it is all that is left
    return proc.stop(timeout_s=30)


def ensure_base_image(settings: Settings) -> None:
    """`docker import` a busybox rootfs as the base image, once."""
    with client(settings) as engine:
        try:
            engine.images.get(settings.docker_base_image)
            return
        except ImageNotFound:
            pass
        if not os.path.exists(BUSYBOX):
            raise ServiceError("busybox is not installed: apt-get install busybox-static")
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            tar.add(BUSYBOX, arcname="bin/busybox")
            for applet in APPLETS:
                link = tarfile.TarInfo(f"bin/{applet}")
                link.type = tarfile.SYMTYPE
                link.linkname = "busybox"
                tar.addfile(link)
        repository, tag = settings.docker_base_image.rsplit(":", 1)
        engine.images.client.api.import_image_from_data(
            buffer.getvalue(), repository=repository, tag=tag
        )
