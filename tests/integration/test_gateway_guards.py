"""Auth, multi-window rate limits, idempotency and batches, against real Redis and Kafka."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import jwt
import pytest
import redis.asyncio as aioredis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from cli.demo import api_keys
from gateway.app import create_app
from gateway.errors import ApiError, DependencyUnavailable
from gateway.limiter import Policy, RateLimiter
from infra.local import redis
from infra.local.process import free_port
from schemas import keys
from schemas.envelope import header_value
from tests.integration.test_gateway_http import read_record, wait_ready
from tributary import redis_client
from tributary.limits import Decision, Window, decide
from tributary.settings import Settings

pytestmark = pytest.mark.integration

EVENT = {"source": "tests", "type": "test.click", "data": {"n": 1}}
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_PUBLIC = (
    RSA_KEY.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)


@pytest.fixture(scope="module")
def guarded(redis_settings: Settings) -> Iterator[tuple[TestClient, Settings]]:
    """A gateway in-process, on the single Redis and on the Redis Cluster."""
    settings = redis_settings.model_copy(
        update={
            "rate_limits": "5/10s,8/m",
            "jwt_rs256_public_key": RSA_PUBLIC,
        }
    )
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        yield client, settings


def token(settings: Settings, sub: str, alg: str = "HS256", **claims: object) -> str:
    payload = {"sub": sub, "aud": settings.jwt_audience, "exp": int(time.time()) + 60, **claims}
    key = settings.jwt_hs256_secret if alg == "HS256" else RSA_KEY
    return jwt.encode(payload, key, algorithm=alg)  # type: ignore[arg-type]


def bearer(value: str) -> dict[str, str]:
    return {"authorization": f"Bearer {value}"}


# --- auth -------------------------------------------------------------------------------


def test_no_credential_is_401(guarded: tuple[TestClient, Settings]) -> None:
    client, _ = guarded
    response = client.post("/v1/events", json=EVENT)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthenticated"
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_unknown_api_key_is_401(guarded: tuple[TestClient, Settings]) -> None:
    client, _ = guarded
    response = client.post("/v1/events", json=EVENT, headers={"x-api-key": "trb_nope"})
    assert (response.status_code, response.json()["error"]) == (401, "invalid_api_key")


def test_api_key_sets_the_user(guarded: tuple[TestClient, Settings]) -> None:
    client, settings = guarded
    key = asyncio.run(api_keys(settings, ["alice"]))["alice"]
    response = client.post("/v1/events", json=EVENT, headers={"x-api-key": key})
    assert response.status_code == 202, response.text
    stored = asyncio.run(_stored_hashes(settings))
    assert key.encode() not in b"".join(stored), "API keys must be stored hashed"


async def _stored_hashes(settings: Settings) -> list[bytes]:
    client = redis_client.connect(settings)
    try:
        keys = await client.hkeys(f"{settings.namespace}:apikeys")
        return [k.encode() if isinstance(k, str) else k for k in keys]
    finally:
        await client.aclose()


@pytest.mark.parametrize("alg", ["HS256", "RS256"])
def test_jwt_bearer_tokens(guarded: tuple[TestClient, Settings], alg: str) -> None:
    client, settings = guarded
    response = client.post(
        "/v1/events", json=EVENT, headers=bearer(token(settings, f"jwt-{alg}", alg))
    )
    assert response.status_code == 202, response.text


@pytest.mark.parametrize(
    ("claims", "error"),
    [({"exp": 1}, "token_expired"), ({"aud": "someone-else"}, "invalid_audience")],
)
def test_expired_or_foreign_tokens_are_401(
    guarded: tuple[TestClient, Settings], claims: dict, error: str
) -> None:
    client, settings = guarded
    response = client.post(
        "/v1/events", json=EVENT, headers=bearer(token(settings, "bob", **claims))
    )
    assert (response.status_code, response.json()["error"]) == (401, error)


def test_token_signed_with_another_secret_is_401(guarded: tuple[TestClient, Settings]) -> None:
    client, settings = guarded
    forged = jwt.encode(
        {"sub": "eve", "aud": settings.jwt_audience, "exp": int(time.time()) + 60},
        "not-the-secret-but-long-enough-for-hs256!!",
        algorithm="HS256",
    )
    assert client.post("/v1/events", json=EVENT, headers=bearer(forged)).status_code == 401


def test_no_api_key_is_made_for_what_is_not_a_user_id(services: Settings) -> None:
    from gateway.auth import create_api_key

    async def make(user_id: str) -> None:
        client = aioredis.from_url(services.redis_dsn)
        try:
            await create_api_key(client, services.namespace, user_id)
        finally:
            await client.aclose()

    with pytest.raises(ValueError, match="not a user id"):
        asyncio.run(make("auth0|5f1c"))


@pytest.mark.parametrize("path", ["/v1/events", "/v1/inference"])
def test_a_token_whose_sub_is_not_a_user_id_is_403(
    guarded: tuple[TestClient, Settings], path: str
) -> None:
    client, settings = guarded
    body = EVENT if path == "/v1/events" else {"inputs": ["a"]}
    for sub in ("auth0|5f1c", "x" * 129):
        response = client.post(path, json=body, headers=bearer(token(settings, sub)))
        assert response.status_code == 403, response.text
        assert response.json()["error"] == "invalid_subject"


def test_acting_for_another_user_is_403(guarded: tuple[TestClient, Settings]) -> None:
    client, settings = guarded
    body = {**EVENT, "subject": "someone-else"}
    response = client.post("/v1/events", json=body, headers=bearer(token(settings, "carol")))
    assert (response.status_code, response.json()["error"]) == (403, "subject_mismatch")


def test_health_and_metrics_need_no_credential(guarded: tuple[TestClient, Settings]) -> None:
    client, _ = guarded
    for path in ("/healthz/live", "/healthz/ready", "/metrics", "/openapi.json"):
        assert client.get(path).status_code == 200, path


# --- rate limits ------------------------------------------------------------------------


def test_burst_admits_exactly_the_limit_then_429(guarded: tuple[TestClient, Settings]) -> None:
    client, settings = guarded
    auth = bearer(token(settings, "burst-user"))
    answers = [client.post("/v1/events", json=EVENT, headers=auth) for _ in range(6)]
    assert [a.status_code for a in answers] == [202] * 5 + [429]
    assert [a.headers["ratelimit-remaining"] for a in answers[:5]] == ["4", "3", "2", "1", "0"]
    refused = answers[5]
    assert refused.headers["ratelimit-limit"] == "5"
    body = refused.json()
    assert body["error"] == "rate_limited"
    assert 0 < body["retry_after_ms"] <= 2000
    assert refused.headers["retry-after"] == "2"


def test_the_minute_window_binds_after_the_short_one_refills(redis_settings: Settings) -> None:
    limiter_settings = redis_settings.model_copy(
        update={"namespace": f"{redis_settings.namespace}-mw{time.monotonic_ns()}"}
    )
    policy = Policy("events", (Window(5, 10_000), Window(8, 60_000)), fail_open=False)

    async def scenario() -> list[bool]:
        client = redis_client.connect(limiter_settings)
        limiter = RateLimiter(client, limiter_settings.namespace)
        try:
            results = []
            for now in [1_000_000] * 6 + [1_010_000] * 6:
                results.append((await limiter.check("u", policy, now_ms=now)).allowed)
            return results
        finally:
            await client.aclose()

    # 5 at once; 10 s later the 10 s window allows 5 again, but the minute window (8/min:
    # 3 slots left plus one refilled every 7.5 s) only 4.
    assert asyncio.run(scenario()) == [True] * 5 + [False] + [True] * 4 + [False] * 2


async def script_calls(settings: Settings) -> int:
    """Lua script calls Redis has served so far (its own count, INFO commandstats), summed
    over every node of a cluster."""
    calls = 0
    for port in redis.ports(settings):
        node = aioredis.Redis(port=port)
        try:
            stats = await node.info("commandstats")
        finally:
            await node.aclose()
        calls += sum(stats.get(f"cmdstat_{c}", {}).get("calls", 0) for c in ("evalsha", "eval"))
    return calls


def test_concurrent_checks_share_script_calls_and_admit_exactly_the_limit(
    redis_settings: Settings,
) -> None:
    """60 checks at once for two users with 10 per window: one script call decides many
    (one per hash slot on a cluster), in arrival order, and exactly 10 of each user's pass."""
    policy = Policy(f"burst{time.monotonic_ns()}", (Window(10, 60_000),), fail_open=False)
    slots = 2 if redis_settings.redis_cluster else 1  # u0 and u1 hash to two slots

    async def scenario() -> tuple[list[tuple[str, Decision]], int]:
        client = redis_client.connect(redis_settings)
        limiter = RateLimiter(client, redis_settings.namespace)
        users = [f"u{i % 2}" for i in range(60)]
        try:
            before = await script_calls(redis_settings)
            decisions = await asyncio.gather(*(limiter.check(u, policy) for u in users))
            calls = await script_calls(redis_settings) - before
        finally:
            await client.aclose()
        return list(zip(users, decisions, strict=True)), calls

    results, calls = asyncio.run(scenario())
    # One for the first check, then the 59 that waited meanwhile (per slot).
    assert 1 <= calls <= 3 * slots
    for user in ("u0", "u1"):
        mine = [d for u, d in results if u == user]
        assert [d.allowed for d in mine] == [True] * 10 + [False] * 20
        assert [d.remaining for d in mine[:10]] == list(range(9, -1, -1))


@hsettings(max_examples=15, deadline=None)
@given(
    steps=st.lists(st.tuples(st.integers(0, 3000), st.integers(1, 3)), min_size=1, max_size=25),
    limits=st.lists(st.tuples(st.integers(1, 20), st.integers(1, 20_000)), min_size=1, max_size=3),
)
def test_lua_script_agrees_with_the_pure_math(
    services: Settings, steps: list, limits: list
) -> None:
    # (On the single Redis: Hypothesis and a parametrized fixture do not mix; the script is
    # the same on a cluster, which the other limiter tests run on.)
    windows = tuple(Window(limit, period) for limit, period in limits)
    policy = Policy(f"prop{time.monotonic_ns()}", windows, fail_open=False)

    async def both() -> None:
        client = aioredis.from_url(services.redis_dsn)
        limiter = RateLimiter(client, services.namespace)
        tats: list[int | None] = [None] * len(windows)
        now = 1_800_000_000_000
        try:
            for gap, cost in steps:
                now += gap
                expected, tats = decide(tats, windows, now, cost)
                assert await limiter.check("u", policy, cost, now_ms=now) == expected
        finally:
            await client.aclose()

    asyncio.run(both())


def test_redis_down_fails_closed_or_open_as_configured() -> None:
    async def check(fail_open: bool) -> bool:
        client = aioredis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
        limiter = RateLimiter(client, "x")
        try:
            policy = Policy("containers", (Window(1, 1000),), fail_open=fail_open)
            return (await limiter.check("u", policy)).allowed
        finally:
            await client.aclose()

    assert asyncio.run(check(fail_open=True)) is True
    with pytest.raises(DependencyUnavailable):
        asyncio.run(check(fail_open=False))


# --- idempotency and batches ------------------------------------------------------------


def test_idempotency_key_replays_the_first_answer(guarded: tuple[TestClient, Settings]) -> None:
    client, settings = guarded
    headers = {**bearer(token(settings, "idem-user")), "idempotency-key": "order-42"}
    first = client.post("/v1/events", json=EVENT, headers=headers)
    second = client.post("/v1/events", json=EVENT, headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()  # same id, partition and offset: produced once
    assert second.headers["idempotency-replayed"] == "true"
    record = asyncio.run(read_record(settings, first.json()["partition"], first.json()["offset"]))
    assert header_value(record.headers, "idempotency-key") == "order-42"
    assert record.key == b"idem-user"
    other = client.post("/v1/events", json={**EVENT, "data": {"n": 2}}, headers=headers)
    assert (other.status_code, other.json()["error"]) == (422, "idempotency_key_reused")


def test_batch_gives_each_event_its_own_result(guarded: tuple[TestClient, Settings]) -> None:
    client, settings = guarded
    events = [EVENT, {**EVENT, "type": "bad type"}, {**EVENT, "subject": "not-me"}, EVENT]
    response = client.post(
        "/v1/events/batch", json={"events": events}, headers=bearer(token(settings, "batch-user"))
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (2, 2)
    assert [r["status"] for r in body["results"]] == [202, 422, 403, 202]
    assert body["results"][1]["message"].startswith("type")
    offsets = [r["offset"] for r in body["results"] if r["status"] == 202]
    assert offsets[1] == offsets[0] + 1  # one user, one partition, in order


def test_batch_over_the_limit_is_422(services: Settings) -> None:
    settings = services.model_copy(update={"max_batch_events": 3})
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        response = client.post(
            "/v1/events/batch",
            json={"events": [EVENT] * 4},
            headers=bearer(token(settings, "big-batch")),
        )
    assert (response.status_code, response.json()["error"]) == (422, "batch_too_large")


@pytest.mark.parametrize("cache_s", [0.0, 30.0])
def test_a_deleted_api_key_is_refused_at_once_or_after_the_cache(
    redis_settings: Settings, cache_s: float
) -> None:
    """The gateway remembers valid keys for `api_key_cache_s` (one Redis call fewer per
    request); with 0 a key deleted from Redis is refused on the next request."""
    from starlette.requests import Request

    from gateway.auth import Authenticator, create_api_key

    settings = redis_settings.model_copy(update={"api_key_cache_s": cache_s})

    async def scenario() -> tuple[str, str | None]:
        client = redis_client.connect(settings)
        try:
            key = await create_api_key(client, settings.namespace, "frank")
            auth = Authenticator(settings, client)
            request = Request({"type": "http", "headers": [(b"x-api-key", key.encode())]})
            first = (await auth(request)).user_id  # type: ignore[union-attr]
            await client.delete(keys.api_keys(settings.namespace))
            try:
                second: str | None = (await auth(request)).user_id  # type: ignore[union-attr]
            except ApiError as exc:
                assert exc.status == 401
                second = None
            return first, second
        finally:
            await client.aclose()

    first, second = asyncio.run(scenario())
    assert first == "frank"
    assert second == (None if cache_s == 0 else "frank")
