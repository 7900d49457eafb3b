"""Credentials from files: `TRIBUTARY_<FIELD>_FILE` names a file holding a secret field's
value (Docker and Kubernetes secrets), so it need not sit in the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from tributary.settings import SECRETS, Settings


def test_a_secret_comes_from_its_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "jwt"
    secret.write_text("s3cret-from-a-file-long-enough-for-hs256\n")
    monkeypatch.setenv("TRIBUTARY_JWT_HS256_SECRET_FILE", str(secret))
    password = tmp_path / "ch"
    password.write_text("pw")
    monkeypatch.setenv("TRIBUTARY_CLICKHOUSE_PASSWORD_FILE", str(password))
    settings = Settings()
    assert settings.jwt_hs256_secret == "s3cret-from-a-file-long-enough-for-hs256"
    assert settings.clickhouse_password == "pw"


def test_a_value_set_directly_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "admin"
    secret.write_text("from-file")
    monkeypatch.setenv("TRIBUTARY_ADMIN_KEY_FILE", str(secret))
    monkeypatch.setenv("TRIBUTARY_ADMIN_KEY", "from-env")
    assert Settings().admin_key == "from-env"
    assert Settings(admin_key="given").admin_key == "given"


def test_an_unreadable_file_stops_the_start_and_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIBUTARY_SHARE_SECRET_FILE", str(tmp_path / "missing"))
    with pytest.raises(ValueError, match=r"TRIBUTARY_SHARE_SECRET_FILE=.*missing"):
        Settings()


def test_only_credentials_are_read_from_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = tmp_path / "port"
    port.write_text("1234")
    monkeypatch.setenv("TRIBUTARY_GATEWAY_PORT_FILE", str(port))
    assert Settings().gateway_port != 1234
    assert set(SECRETS) <= set(Settings.model_fields)
