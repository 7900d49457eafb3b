"""The admin credential: what the projector's query and replay API (and any admin route) asks.

An admin key is 256 random bits behind the prefix `trba_`; servers hold only SHA-256
hashes (`TRIBUTARY_ADMIN_KEY_SHA256`), as the gateway does for users' keys. For a stack
on one machine, the first projector on loopback writes a key to `<data_dir>/admin.key`
(mode 0600), where the CLI and the demo find it; a projector bound wider must be given
hashes (`must_have_credential`).
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import os
import secrets
from pathlib import Path

from tributary.credentials import hash_key as hash_key  # what servers hold
from tributary.settings import Settings

ADMIN_KEY_PREFIX = "trba_"


class MissingCredential(RuntimeError):
    """A server bound beyond loopback without an admin credential to ask for."""


def new_key() -> str:
    return ADMIN_KEY_PREFIX + secrets.token_urlsafe(32)


def key_file(settings: Settings) -> Path:
    return settings.data_dir.resolve() / "admin.key"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def configured_hashes(settings: Settings) -> frozenset[str]:
    return frozenset(h.strip().lower() for h in settings.admin_key_sha256.split(",") if h.strip())


def ensure_local_key(settings: Settings) -> str:
    """The local key file's key, written first if there is none (atomically: a second
    process starting at the same moment reads the first one's key, never half of it)."""
    path = key_file(settings)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = path.with_name(f".admin.key.{os.getpid()}")
        fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(new_key() + "\n")
        with contextlib.suppress(FileExistsError):
            os.link(scratch, path)
        scratch.unlink()
    return path.read_text().strip()


def server_hashes(settings: Settings, host: str) -> frozenset[str]:
    """The hashes a server bound to `host` accepts. Configured ones if any; else, on
    loopback, the local key file's (made if missing); else `MissingCredential`."""
    hashes = configured_hashes(settings)
    if hashes:
        return hashes
    if not is_loopback(host):
        raise MissingCredential(
            f"binding {host} needs an admin credential: set TRIBUTARY_ADMIN_KEY_SHA256 "
            "(the SHA-256 of a key from `tributary admin-key`)"
        )
    return frozenset({hash_key(ensure_local_key(settings))})


def accepts(presented: str | None, hashes: frozenset[str]) -> bool:
    """Whether `presented` is one of the keys behind `hashes` (compared in constant time)."""
    if not presented or not presented.startswith(ADMIN_KEY_PREFIX):
        return False
    digest = hash_key(presented)
    return any(hmac.compare_digest(digest, h) for h in hashes)


def client_headers(settings: Settings) -> dict[str, str]:
    """What a client sends: `TRIBUTARY_ADMIN_KEY`, or the local key file's key."""
    key = settings.admin_key
    if key is None:
        path = key_file(settings)
        key = path.read_text().strip() if path.exists() else None
    return {"Authorization": f"Bearer {key}"} if key else {}
