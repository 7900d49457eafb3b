"""Triton, through PyTriton's bundled `tritonserver`, in a virtual environment of its own.

`.venv-triton` holds nvidia-pytriton (which needs numpy<2), torch and the packaged
all-MiniLM-L6-v2 model; it is made by `make triton-venv`. The server's Python stub
links the interpreter's libpython, so LD_LIBRARY_PATH is set to that interpreter's
LIBDIR (without it models fail to load with `_recursion_count`).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx

from infra.local.process import Managed, ServiceError, wait_until
from tributary.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv-triton"
SERVER = ROOT / "infra" / "triton" / "server.py"


def managed(settings: Settings) -> Managed:
    return Managed("triton", settings.data_dir.resolve() / "run")


def is_ready(settings: Settings) -> bool:
    try:
        url = f"http://{settings.triton_url}/v2/models/minilm/ready"
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def start(settings: Settings, timeout_s: float = 180.0) -> str:
    proc = managed(settings)
    if proc.pid() is None and not is_ready(settings):
        python = VENV / "bin" / "python"
        if not python.exists():
            raise ServiceError(f"{python} is missing: run `make triton-venv` first.")
        libdir = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        port = settings.triton_url.rsplit(":", 1)[1]
        env = {
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            # Torch's OpenMP threads otherwise spin between executions, taking the CPU
            # the rest of a machine shared with Tributary needs (bench/RESULTS.md).
            "OMP_WAIT_POLICY": "PASSIVE",
            "LD_LIBRARY_PATH": ":".join(filter(None, [libdir, os.environ.get("LD_LIBRARY_PATH")])),
        }
        base = int(port)
        proc.start(
            [
                str(python),
                str(SERVER),
                f"--http-port={base}",
                f"--grpc-port={base + 1}",
                f"--metrics-port={base + 2}",
                f"--queue-delay-us={settings.triton_queue_delay_us}",
            ],
            env=env,
        )
    wait_until(lambda: is_ready(settings), "triton", timeout_s, proc)
    return f"triton ready at http://{settings.triton_url} (model minilm)"


def stop(settings: Settings) -> bool:
    return managed(settings).stop(timeout_s=30)
