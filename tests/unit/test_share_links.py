"""View-only share links to a desktop: signed, scoped to one container, short-lived."""

from __future__ import annotations

import time
from pathlib import Path

import jwt

from gateway.routes.desktops import mint, share_secret, shared
from tributary.settings import Settings


def test_a_link_opens_its_own_container_only_until_it_expires(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, share_secret="s" * 40)
    token, expires_ms = mint(settings, "c1", "ida", ttl_s=60)
    assert shared(settings, token, "c1")
    assert not shared(settings, token, "c2")  # another container
    assert not shared(settings, token[:-3] + "AAA", "c1")  # tampered
    assert abs(expires_ms / 1000 - (time.time() + 60)) < 5
    other = Settings(data_dir=tmp_path, share_secret="t" * 40)
    assert not shared(other, token, "c1")  # signed by another key
    old = jwt.encode({"cid": "c1", "scope": "view", "exp": int(time.time()) - 1}, "s" * 40)
    assert not shared(settings, old, "c1")  # expired
    drive = jwt.encode({"cid": "c1", "scope": "drive", "exp": int(time.time()) + 60}, "s" * 40)
    assert not shared(settings, drive, "c1")  # not a view link


def test_gateways_sharing_a_data_folder_share_one_key(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    first = share_secret(settings)
    assert share_secret(settings) == first and len(first) > 40
    assert (tmp_path / "share.key").stat().st_mode & 0o077 == 0
