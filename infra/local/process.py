"""Detached processes with pid files: start once, find again, stop.

Every local service (broker, redis, gateway, worker, projector) is started through
here, so `tributary up` is idempotent: a live pid file means "already running".
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tributary.pids import alive


class ServiceError(RuntimeError):
    """A service could not be installed or started; the message says what to do."""


@dataclass(frozen=True)
class Managed:
    """A named process whose pid file and log live under `run_dir`."""

    name: str
    run_dir: Path

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir / f"{self.name}.log"

    def pid(self) -> int | None:
        """The pid of the running process, or None (a stale pid file is removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if alive(pid):
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    def start(
        self, argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> int:
        """Start `argv` detached (own session), output to the log file; return its pid."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=child_env(env or {}),
                cwd=cwd,
                start_new_session=True,
            )
        self.pid_file.write_text(str(proc.pid))
        return proc.pid

    def stop(self, timeout_s: float = 30.0, sig: int = signal.SIGTERM) -> bool:
        """Send `sig`, wait up to `timeout_s`, then SIGKILL. True if something was stopped."""
        pid = self.pid()
        if pid is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and alive(pid):
            time.sleep(0.1)
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            while alive(pid):
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        return True

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def port_in_use(host: str, port: int) -> bool:
    """True if something accepts TCP connections on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    check: Callable[[], bool],
    what: str,
    timeout_s: float,
    proc: Managed | Sequence[Managed] | None = None,
    why: Callable[[], str] | None = None,
) -> None:
    """Poll `check` until true; raise `ServiceError` with the log tail on timeout, or as soon
    as one of `proc` exits, and what `why` says (e.g. the readiness answer: the log may not
    say what is wrong)."""
    procs = [] if proc is None else [proc] if isinstance(proc, Managed) else list(proc)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        for p in procs:
            if p.pid() is None:
                raise ServiceError(f"{p.name}: process exited. Last log lines:\n{p.log_tail()}")
        time.sleep(0.2)
    reason = f" {why()}." if why else ""
    tails = "".join(f" Last log lines of {p.name}:\n{p.log_tail()}" for p in procs)
    raise ServiceError(f"{what}: not ready after {timeout_s:.0f}s.{reason}{tails}")


def family(run_dir: Path, name: str) -> list[Managed]:
    """`name` and its numbered siblings (`name-2`, ...) with a pid file in `run_dir`, and
    `name` itself: what a stop must find, whatever the settings say now."""
    run = run_dir.resolve()
    return [Managed(name, run), *(Managed(p.stem, run) for p in sorted(run.glob(f"{name}-*.pid")))]


def run_or_fail(argv: list[str], what: str, timeout_s: float, cwd: Path | None = None) -> str:
    """Run `argv` (in `cwd`); its stdout, or `ServiceError` with what it printed."""
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout_s, check=False, cwd=cwd
    )
    if done.returncode != 0:
        raise ServiceError(f"{what} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done.stdout


def child_env(env: dict[str, str]) -> dict[str, str]:
    """This process's environment with `env` over it. A credential `env` passes as a file
    (`TRIBUTARY_X_FILE`) drops an inherited `TRIBUTARY_X`, which would win over the file."""
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not (k.startswith("TRIBUTARY_") and f"{k}_FILE" in env)
    }
    return {**inherited, **env}
