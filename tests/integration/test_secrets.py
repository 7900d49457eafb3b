"""Credentials reach every process as files, and no process writes one to its log.

A stack (projector, worker, gateway, dashboard) gets its own JWT secret, admin key, session
and share secrets; `stack.settings_env` hands them over as `TRIBUTARY_*_FILE` files. The
test then uses every credential, right and wrong (events with an API key and a JWT, a forged
JWT, the projector's API with the admin key and a wrong one, the dashboard's login), and
greps every process log for any of them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from cli.demo import api_keys
from infra.local import stack
from tests.conftest import app_stack
from tributary import admin
from tributary.settings import SECRETS, Settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def secret_stack(services: Settings) -> Iterator[tuple[Settings, dict[str, str]]]:
    key = admin.new_key()
    secrets = {
        "jwt_hs256_secret": f"jwt-{admin.new_key()}",
        "admin_key": key,
        "dashboard_session_secret": f"session-{admin.new_key()}",
        "share_secret": f"share-{admin.new_key()}",
    }
    with app_stack(services, admin_key_sha256=admin.hash_key(key), **secrets) as settings:
        try:
            print(stack.start_app(settings, stack.DASHBOARD))
            yield settings, secrets
        finally:
            stack.managed(settings, stack.DASHBOARD).stop(timeout_s=20)


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def test_credentials_arrive_as_files_and_no_log_holds_one(
    secret_stack: tuple[Settings, dict[str, str]],
) -> None:
    settings, secrets = secret_stack
    for app in (*stack.APPS, stack.DASHBOARD):
        pid = stack.managed(settings, app).pid()
        assert pid is not None, app.name
        env = environ(pid)
        for name, value in secrets.items():
            assert value not in env.values(), f"{app.name} has {name} in its environment"
            assert Path(env[f"TRIBUTARY_{name.upper()}_FILE"]).read_text() == value

    user_key = asyncio.run(api_keys(settings, ["secret-user"]))["secret-user"]
    token = jwt.encode(
        {"sub": "secret-user", "aud": settings.jwt_audience, "exp": int(time.time()) + 60},
        secrets["jwt_hs256_secret"],
        algorithm="HS256",
    )
    forged = jwt.encode({"sub": "secret-user"}, "not-the-secret", algorithm="HS256")
    wrong_key = "trba_" + "x" * 40
    event = {"source": "secrets", "type": "t.secret", "data": {"n": 1}}
    events = f"{settings.gateway_url}/v1/events"
    answers = [
        httpx.post(events, json=event, headers={"X-API-Key": user_key}).status_code,
        httpx.post(events, json=event, headers={"Authorization": f"Bearer {token}"}).status_code,
        httpx.post(events, json=event, headers={"Authorization": f"Bearer {forged}"}).status_code,
        httpx.post(events, json=event, headers={"X-API-Key": wrong_key}).status_code,
    ]
    assert answers == [202, 202, 401, 401]
    query = f"{settings.projector_url}/query"
    sql = {"sql": "SELECT 1"}
    good = httpx.post(query, json=sql, headers={"Authorization": f"Bearer {secrets['admin_key']}"})
    bad = httpx.post(query, json=sql, headers={"Authorization": f"Bearer {wrong_key}"})
    assert (good.status_code, bad.status_code) == (200, 401)
    login = f"{settings.dashboard_url}/login"
    assert httpx.post(login, data={"key": wrong_key}).status_code == 401
    assert httpx.post(login, data={"key": secrets["admin_key"]}).status_code == 303

    credentials = {**secrets, "user api key": user_key, "jwt": token, "forged jwt": forged}
    credentials["wrong key"] = wrong_key
    time.sleep(1)  # let the processes write what they write about these requests
    logs = sorted((settings.data_dir.resolve() / "run").glob("*.log"))
    assert any(p.name.startswith("gateway") for p in logs), logs
    leaks = [
        f"{path.name}: {name}"
        for path in logs
        for name, value in credentials.items()
        if value in path.read_text(errors="replace")
    ]
    assert not leaks, leaks
    assert set(secrets) <= set(SECRETS)
