"""Tributary's container images, built on this machine with no registry.

The Dockerfiles are the production recipe: each starts `FROM ${BASE}`, any Debian bookworm
image, and installs from Debian's packages and PyPI. Where a registry is reachable BASE is
`debian:bookworm-slim`; here `base()` makes it: `mmdebstrap` builds a Debian root file
system from the package mirrors and `docker import` turns it into `tributary/debian:bookworm`.
The builds run with the host's network (`docker build --network host`): our engine gives
containers no route out. Docker's layer cache makes a second build with nothing changed
take seconds; the base is made again only when its recipe changes (a label holds its hash).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from infra.local import kafka
from infra.local.process import ServiceError
from tributary.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
IMAGES_DIR = ROOT / "infra" / "images"
BASE = "tributary/debian:bookworm"
BASE_RECIPE = ("mmdebstrap", "--variant=apt", "--include=ca-certificates", "bookworm")
# The host's own certificate authorities (here, an egress proxy's) go into the base, as a
# company's base image carries its own, and pip is told to use the system's store.
LOCAL_CAS = Path("/usr/local/share/ca-certificates")
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
BASE_ENV = (
    f"PIP_CERT={CA_BUNDLE}",
    f"SSL_CERT_FILE={CA_BUNDLE}",
    f"REQUESTS_CA_BUNDLE={CA_BUNDLE}",
)
# The tags: TRIBUTARY_IMAGE_PREFIX/<name>:TRIBUTARY_IMAGE_TAG, as docker-compose.yml names them.
PREFIX = os.environ.get("TRIBUTARY_IMAGE_PREFIX", "tributary")
TAG = os.environ.get("TRIBUTARY_IMAGE_TAG", "local")


@dataclass(frozen=True)
class Image:
    name: str
    dockerfile: Path
    context: Callable[[Settings], Path]  # the build context (made if it is staged)

    @property
    def tag(self) -> str:
        return tag(self.name)


def tag(name: str) -> str:
    """The local tag of image `name`: `tributary/<name>:local`."""
    return f"{PREFIX}/{name}:{TAG}"


# What the app and Triton images copy from the repository: staged apart, so the build
# context is these files only, not a checkout with its virtual environments and data.
APP_FILES: tuple[str, ...] = ("pyproject.toml", "README.md", "Dockerfile")
APP_FILES += ("schemas", "gateway", "streams", "projections", "infra", "tributary")


def _staged(name: str, paths: tuple[str, ...]) -> Callable[[Settings], Path]:
    def stage(settings: Settings) -> Path:
        staged = settings.data_dir.resolve() / "images" / name
        if staged.exists():
            shutil.rmtree(staged)
        staged.mkdir(parents=True)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        for path in paths:
            source = ROOT / path
            if source.is_dir():
                shutil.copytree(source, staged / path, ignore=ignore)
            else:
                (staged / path).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, staged / path)
        return staged

    return stage


def _own_folder(name: str) -> Callable[[Settings], Path]:
    return lambda _: IMAGES_DIR / name


def _kafka_context(settings: Settings) -> Path:
    """The Kafka Dockerfile, its entrypoint and logging config, and the cached jars."""
    staged = settings.data_dir.resolve() / "images" / "kafka"
    jars = kafka.ensure_jars(settings)
    if staged.exists():
        shutil.rmtree(staged)
    shutil.copytree(IMAGES_DIR / "kafka", staged)
    shutil.copytree(jars, staged / "libs")
    shutil.copy2(ROOT / "infra" / "kafka" / "log4j2.properties", staged / "log4j2.properties")
    return staged


IMAGES: tuple[Image, ...] = (
    Image("kafka", IMAGES_DIR / "kafka" / "Dockerfile", _kafka_context),
    Image("redis", IMAGES_DIR / "redis" / "Dockerfile", _own_folder("redis")),
    Image("haproxy", IMAGES_DIR / "haproxy" / "Dockerfile", _own_folder("haproxy")),
    Image("dockerd", IMAGES_DIR / "dockerd" / "Dockerfile", _own_folder("dockerd")),
    Image("desktop", IMAGES_DIR / "desktop" / "Dockerfile", _own_folder("desktop")),
    Image("app", ROOT / "Dockerfile", _staged("app", APP_FILES)),
    Image("triton", ROOT / "infra" / "triton" / "Dockerfile", _staged("triton", ("infra/triton",))),
)


@dataclass(frozen=True)
class Built:
    name: str
    tag: str
    seconds: float
    size_bytes: int


def _docker(settings: Settings, *args: str, capture: bool = True) -> str:
    env = {**os.environ, "DOCKER_HOST": settings.docker_dsn}
    done = subprocess.run(
        ["docker", *args], env=env, capture_output=capture, text=True, check=False
    )
    if done.returncode != 0:
        detail = (done.stderr or done.stdout or "")[-3000:] if capture else ""
        raise ServiceError(f"docker {' '.join(args[:2])} failed ({done.returncode}): {detail}")
    return done.stdout if capture else ""


def _local_cas() -> list[Path]:
    return sorted(LOCAL_CAS.glob("*.crt")) if LOCAL_CAS.is_dir() else []


def _recipe() -> list[str]:
    """mmdebstrap's arguments, with hooks that add the host's certificate authorities."""
    hooks: list[str] = []
    cas = _local_cas()
    if cas:
        hooks += [
            f'--customize-hook=mkdir -p "$1{LOCAL_CAS}"',
            f"--customize-hook=copy-in {' '.join(map(str, cas))} {LOCAL_CAS}",
            '--customize-hook=chroot "$1" update-ca-certificates',
        ]
    return [*BASE_RECIPE[:-1], *hooks, BASE_RECIPE[-1]]


def _recipe_hash() -> str:
    digest = hashlib.sha256(" ".join([*_recipe(), *BASE_ENV]).encode())
    for ca in _local_cas():
        digest.update(ca.read_bytes())
    return digest.hexdigest()[:16]


def base(settings: Settings, echo: Callable[[str], None] = print) -> float:
    """Make `tributary/debian:bookworm` unless it exists from the same recipe; seconds spent."""
    recipe = _recipe_hash()
    try:
        label = _docker(
            settings, "image", "inspect", "-f", '{{index .Config.Labels "tributary.recipe"}}', BASE
        ).strip()
    except ServiceError:
        label = ""
    if label == recipe:
        return 0.0
    if shutil.which("mmdebstrap") is None:
        raise ServiceError("mmdebstrap is not installed: apt-get install mmdebstrap")
    started = time.monotonic()
    out = settings.data_dir.resolve() / "images" / "debian-bookworm.tar"
    out.parent.mkdir(parents=True, exist_ok=True)
    echo(f"building the Debian base with {' '.join(BASE_RECIPE)}")
    made = subprocess.run([*_recipe(), str(out)], capture_output=True, text=True, check=False)
    if made.returncode != 0:
        raise ServiceError(f"mmdebstrap failed: {made.stderr[-2000:]}")
    changes = [f"LABEL tributary.recipe={recipe}", *(f"ENV {e}" for e in BASE_ENV)]
    _docker(settings, "import", *(a for c in changes for a in ("--change", c)), str(out), BASE)
    out.unlink()
    return time.monotonic() - started


def build(
    settings: Settings,
    names: list[str] | None = None,
    echo: Callable[[str], None] = print,
    from_base: str | None = None,
) -> list[Built]:
    """Build the images named (all by default) on `settings`' engine; each with its time.
    `from_base`: a Debian bookworm image to start from (e.g. `debian:bookworm-slim` where a
    registry is reachable) instead of the one `base()` makes here."""
    chosen = [i for i in IMAGES if names is None or i.name in names]
    unknown = set(names or ()) - {i.name for i in IMAGES}
    if unknown:
        raise ServiceError(f"no image {sorted(unknown)}; known: {[i.name for i in IMAGES]}")
    if from_base is None:
        base(settings, echo)
    built = []
    for image in chosen:
        started = time.monotonic()
        context = image.context(settings)
        _docker(
            settings,
            "build",
            "--network",
            "host",
            "--build-arg",
            f"BASE={from_base or BASE}",
            "-f",
            str(image.dockerfile),
            "-t",
            image.tag,
            str(context),
        )
        size = int(_docker(settings, "image", "inspect", "-f", "{{.Size}}", image.tag).strip())
        built.append(Built(image.name, image.tag, time.monotonic() - started, size))
        echo(f"{image.tag:<28} {size / 2**20:>8.0f} MiB  {built[-1].seconds:>6.1f} s")
    return built
