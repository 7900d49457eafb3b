"""The admin credential: hashes only on servers, a local key file, wider binds need one."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tributary import admin
from tributary.settings import Settings


def test_a_key_is_accepted_only_against_its_hash() -> None:
    key, other = admin.new_key(), admin.new_key()
    hashes = frozenset({admin.hash_key(key)})
    assert admin.accepts(key, hashes)
    assert not admin.accepts(other, hashes)
    assert not admin.accepts(None, hashes)
    assert not admin.accepts("", hashes)
    # A users' key or the hash itself is not an admin key.
    assert not admin.accepts(admin.hash_key(key), hashes)


def test_loopback_makes_one_local_key_file_readable_by_its_owner_only(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    hashes = admin.server_hashes(settings, "127.0.0.1")
    path = admin.key_file(settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = path.read_text().strip()
    assert hashes == frozenset({admin.hash_key(key)})
    # A second server, and the client, find the same key.
    assert admin.server_hashes(settings, "::1") == hashes
    assert admin.client_headers(settings) == {"Authorization": f"Bearer {key}"}


def test_a_wider_bind_without_configured_hashes_refuses_to_start(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    with pytest.raises(admin.MissingCredential, match="TRIBUTARY_ADMIN_KEY_SHA256"):
        admin.server_hashes(settings, "0.0.0.0")
    assert not admin.key_file(settings).exists()
    key = admin.new_key()
    configured = Settings(data_dir=tmp_path, admin_key_sha256=f" {admin.hash_key(key)} ,")
    assert admin.server_hashes(configured, "0.0.0.0") == frozenset({admin.hash_key(key)})


def test_the_client_key_setting_wins_over_the_file(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, admin_key="trba_given")
    admin.ensure_local_key(settings)
    assert admin.client_headers(settings) == {"Authorization": "Bearer trba_given"}
    assert admin.client_headers(Settings(data_dir=tmp_path / "none")) == {}
