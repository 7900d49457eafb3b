"""Every surface a user or a neighbour can reach, tried as an attacker would (issue #22).

Real processes (gateway, worker, projector on Kafka, Redis and chDB). Each hostile case
expects a clear 4xx (or a WebSocket close code) within 2 s, and the suite checks that
nothing it sent changed stored data: the ingest and command topics and every projected
table hold what they held before.
"""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import websockets

from bench.query_load import last_202_to_last_row
from cli.demo import api_keys, query
from infra.local import stack
from projections.tables import PROJECTIONS
from schemas import topics
from tests.conftest import app_stack
from tributary import admin
from tributary.kafka_clients import read_to_end
from tributary.settings import Settings

pytestmark = pytest.mark.integration

QUERY_LIMIT_S = 4.0
CLEAR_WITHIN_S = 2.0


@pytest.fixture(scope="module")
def hosts(services: Settings) -> Iterator[Settings]:
    """The projector, a worker and the gateway, with a short analyst-query time limit."""
    # A socket without a credential may still send one as its first message: it is
    # refused after this long.
    with app_stack(
        services, query_max_execution_s=QUERY_LIMIT_S, push_auth_timeout_s=1.0
    ) as settings:
        yield settings


@pytest.fixture(scope="module")
def user_key(hosts: Settings) -> str:
    return asyncio.run(api_keys(hosts, ["hostile-user"]))["hostile-user"]


def stored(settings: Settings) -> dict[str, int]:
    """Records on the topics clients write, and rows in every projected table."""
    counts = {
        spec.name: len(
            asyncio.run(read_to_end(settings.kafka_bootstrap, spec.physical(settings.namespace)))
        )
        for spec in (topics.INGEST, topics.COMMANDS)
    }
    db = settings.clickhouse_database
    for projection in PROJECTIONS:
        counts[projection.table] = query(settings, f"SELECT count() FROM {db}.{projection.table}")[
            0
        ][0]
    return counts


def post_query(
    settings: Settings, sql: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.post(
        f"{settings.projector_url}/query",
        json={"sql": sql},
        headers=admin.client_headers(settings) if headers is None else headers,
        timeout=QUERY_LIMIT_S + 30,
    )


# ---------------------------------------------------------------- the projector's API


def test_the_projector_api_answers_only_an_admin_key(hosts: Settings, user_key: str) -> None:
    calls = [
        ("POST", "/query", {"sql": "SELECT 1"}),
        ("POST", "/replays", {"topic": "events.ingest"}),
        ("GET", "/replays/anything", None),
        ("GET", "/no-such-route", None),
    ]
    for credential, error in [
        ({}, "unauthenticated"),
        ({"Authorization": "Bearer trba_not-a-real-key"}, "invalid_admin_key"),
        ({"X-API-Key": user_key}, "invalid_admin_key"),  # a user's key is no admin key
        ({"Authorization": f"Bearer {admin.hash_key(admin.new_key())}"}, "invalid_admin_key"),
    ]:
        for method, path, body in calls:
            started = time.monotonic()
            response = httpx.request(
                method, f"{hosts.projector_url}{path}", json=body, headers=credential
            )
            assert time.monotonic() - started < CLEAR_WITHIN_S
            assert response.status_code == 401, (method, path, credential)
            assert response.json()["error"] == error
            assert response.headers["www-authenticate"].startswith("Bearer")
    for path in ("/healthz/live", "/healthz/ready", "/metrics"):
        assert httpx.get(f"{hosts.projector_url}{path}").status_code == 200, path
    assert post_query(hosts, "SELECT 1").json() == {"columns": ["1"], "rows": [[1]]}


SYNTAX = "syntax"  # refused by ClickHouse's parser before anything else: 400 query_failed


def hostile_queries(secret: Path, out: Path) -> list[tuple[str, str, str]]:
    """(name, SQL, the refusal's reason) of queries that would read or write the host, or
    read beyond the database."""
    return [
        ("file read", f"SELECT * FROM file('{secret}', 'LineAsString')", "outward_function"),
        ("file function", f"SELECT file('{secret}')", "outward_function"),
        ("file in an error", f"SELECT toUInt8(file('{secret}'))", "outward_function"),
        ("into outfile", f"SELECT 1 INTO OUTFILE '{out}/a'", "not_a_select"),
        (
            "into outfile after WITH",
            f"WITH 1 AS x SELECT x INTO OUTFILE '{out}/b' FORMAT CSV",
            "not_a_select",
        ),
        ("format then outfile", f"SELECT 1 FORMAT CSV INTO OUTFILE '{out}/c'", SYNTAX),
        (
            "outfile behind a comment",
            f"SELECT 1 /* ) */ INTO OUTFILE '{out}/d' -- x",
            "not_a_select",
        ),
        ("subquery outfile", f"SELECT * FROM (SELECT 1) INTO OUTFILE '{out}/e'", "not_a_select"),
        (
            "insert into file",
            f"INSERT INTO FUNCTION file('{out}/f', 'CSV') SELECT 1",
            "not_a_select",
        ),
        ("url", "SELECT * FROM url('http://127.0.0.1:9/x', 'CSV', 'a String')", "table_function"),
        ("s3", "SELECT * FROM s3('http://127.0.0.1:9/b/x', 'CSV', 'a String')", "table_function"),
        ("remote", "SELECT * FROM remote('127.0.0.1', system.one)", "table_function"),
        ("executable", "SELECT * FROM executable('id', 'TSV', 'a String')", "table_function"),
        ("input", "SELECT * FROM input('a String')", "table_function"),
        ("merge over system", "SELECT * FROM merge('system', '^tables$')", "table_function"),
        ("mysql", "SELECT * FROM mysql('127.0.0.1:9', 'd', 't', 'u', 'p')", "table_function"),
        ("system table", "SELECT name FROM system.tables", "outside_database"),
        ("information schema", "SELECT * FROM INFORMATION_SCHEMA.TABLES", "outside_database"),
        (
            "system table in a scalar",
            "SELECT (SELECT groupArray(name) FROM system.tables)",
            "outside_database",
        ),
        (
            "running queries in a scalar",
            "SELECT arrayJoin((SELECT groupArray(query) FROM system.processes))",
            "outside_database",
        ),
        (
            "merge in a scalar",
            "WITH (SELECT count() FROM merge('system', '^tables$')) AS n SELECT n",
            "table_function",
        ),
        ("server setting", "SELECT getServerSetting('path')", "outward_function"),
        (
            "settings in the query",
            f"SELECT * FROM file('{secret}') SETTINGS readonly = 0",
            "outward_function",
        ),
        ("drop", "DROP TABLE events_counted", "not_a_select"),
        ("insert", "INSERT INTO events_counted SELECT * FROM events_counted", "not_a_select"),
        ("second statement", "SELECT 1; DROP TABLE events_counted", SYNTAX),
        ("alter", "ALTER TABLE events_counted DELETE WHERE 1", "not_a_select"),
        ("system command", "SYSTEM SHUTDOWN", "not_a_select"),
    ]


def test_queries_that_reach_outside_are_refused_with_or_without_the_key(
    hosts: Settings, tmp_path: Path
) -> None:
    before = stored(hosts)
    token = uuid.uuid4().hex
    secret = tmp_path / "secret.txt"
    secret.write_text(token)
    out = tmp_path / "out"
    out.mkdir()
    for name, sql, reason in hostile_queries(secret, out):
        started = time.monotonic()
        unauthenticated = post_query(hosts, sql, headers={})
        assert unauthenticated.status_code == 401, name
        response = post_query(hosts, sql)
        assert time.monotonic() - started < CLEAR_WITHIN_S, name
        body = response.json()
        if reason == SYNTAX:
            assert (response.status_code, body["error"]) == (400, "query_failed"), name
            assert "SYNTAX_ERROR" in body["message"], name
        else:
            assert response.status_code == 403, (name, response.text)
            assert (body["error"], body["reason"]) == ("query_refused", reason), name
        assert token not in response.text, f"{name}: the host's file leaked"
    assert list(out.iterdir()) == [], "a query wrote a file"
    assert stored(hosts) == before


def test_a_readable_query_still_runs_and_names_its_limits(hosts: Settings) -> None:
    db = hosts.clickhouse_database
    ok = post_query(
        hosts,
        f"WITH recent AS (SELECT user_id FROM {db}.events_counted LIMIT 10) "
        "SELECT count() FROM recent UNION ALL SELECT count() FROM numbers(3) -- fine",
    )
    assert ok.status_code == 200, ok.text
    too_many = post_query(hosts, f"SELECT * FROM numbers({hosts.query_max_result_rows + 1})")
    assert too_many.status_code == 422
    assert too_many.json()["limit"] == "max_result_rows/max_result_bytes"
    assert post_query(hosts, "SELECT 1").status_code == 200  # the session recovered


def test_a_query_at_its_limits_does_not_hold_ingestion_back(hosts: Settings) -> None:
    """Events sent while a query runs at its limits land before it is cut (not behind its
    lock), and the query is cut at its time limit with a 422. The latency ratio, idle
    against loaded, is measured by `bench.query_load`, not here."""
    for _ in range(2):
        outcome: dict[str, Any] = {}

        def heavy(outcome: dict[str, Any] = outcome) -> None:
            started = time.monotonic()
            outcome["response"] = post_query(hosts, "SELECT count() FROM numbers(100000000000)")
            outcome["seconds"] = time.monotonic() - started

        runner = threading.Thread(target=heavy)
        runner.start()
        time.sleep(0.5)  # the query is running
        landed = last_202_to_last_row(hosts)
        assert runner.is_alive(), f"events took {landed:.2f} s: they waited for the query"
        runner.join()
        response = outcome["response"]
        assert response.status_code == 422, response.text
        assert response.json()["limit"] == "max_execution_time"
        assert QUERY_LIMIT_S <= outcome["seconds"] < QUERY_LIMIT_S + 5


def test_queries_past_the_concurrency_cap_are_429(hosts: Settings) -> None:
    runner = threading.Thread(
        target=post_query, args=(hosts, "SELECT count() FROM numbers(100000000000)")
    )
    runner.start()
    time.sleep(0.5)
    try:
        response = post_query(hosts, "SELECT 1")
        assert response.status_code == 429
        assert response.json()["limit"] == "query_concurrency"
        assert response.headers["retry-after"] == "1"
    finally:
        runner.join()
    assert post_query(hosts, "SELECT 1").status_code == 200


# ---------------------------------------------------------------- the HTTP edge


@pytest.mark.parametrize("server", ["gateway", "projector"])
def test_oversized_headers_are_431_and_long_urls_414(hosts: Settings, server: str) -> None:
    base = hosts.gateway_url if server == "gateway" else hosts.projector_url
    big = httpx.get(f"{base}/healthz/live", headers={"X-Big": "a" * 100_000})
    assert big.status_code == 431 and big.json()["error"] == "headers_too_large"
    many = httpx.get(f"{base}/healthz/live", headers={f"X-H{i}": "v" for i in range(200)})
    assert many.status_code == 431 and many.json()["error"] == "too_many_headers"
    long = httpx.get(f"{base}/healthz/live?q={'x' * 20_000}")
    assert long.status_code == 414 and long.json()["error"] == "uri_too_long"
    assert httpx.get(f"{base}/healthz/live").status_code == 200


# ---------------------------------------------------------------- gateway, WS, CLI


def _jwt(settings: Settings, **claims: Any) -> str:
    base = {"sub": "hostile-user", "aud": settings.jwt_audience, "exp": int(time.time()) + 60}
    return jwt.encode({**base, **claims}, settings.jwt_hs256_secret or "", algorithm="HS256")


def gateway_cases(settings: Settings, key: str) -> list[tuple[str, dict[str, Any], int]]:
    """(name, httpx request arguments, expected status) for the events route."""
    ok = {"source": "hostile", "type": "t.x", "data": {}}
    as_json = {"x-api-key": key, "content-type": "application/json"}
    unsigned = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
    claims = base64.urlsafe_b64encode(b'{"sub":"hostile-user"}').rstrip(b"=").decode()
    forged = jwt.encode(
        {"sub": "hostile-user", "aud": settings.jwt_audience, "exp": int(time.time()) + 60},
        "a-secret-that-is-not-the-gateways-own",
        algorithm="HS256",
    )
    nested = b'{"source":"s","type":"t","data":' + b"[" * 5000 + b"]" * 5000 + b"}"
    oversized = b'{"source":"' + b"a" * (settings.max_body_bytes + 1) + b'"}'

    def bearer(token: str) -> dict[str, Any]:
        return {"json": ok, "headers": {"authorization": f"Bearer {token}"}}

    def raw(body: bytes, **headers: str) -> dict[str, Any]:
        return {"content": body, "headers": {**as_json, **headers}}

    return [
        ("no credential", {"json": ok}, 401),
        ("unknown key", {"json": ok, "headers": {"x-api-key": "trb_nope"}}, 401),
        ("admin key as a user's", {"json": ok, "headers": {"x-api-key": admin.new_key()}}, 401),
        ("alg none", bearer(f"{unsigned}.{claims}."), 401),
        ("expired jwt", bearer(_jwt(settings, exp=1)), 401),
        ("forged jwt", bearer(forged), 401),
        ("another user's subject", {"json": {**ok, "subject": "victim"}, "headers": as_json}, 403),
        ("not json", raw(b"{nope"), 422),
        ("invalid utf-8", raw(b'{"source":"\xff\xfe","type":"t","data":{}}'), 400),
        ("deep nesting", raw(nested), 400),
        ("nan", raw(b'{"source":"s","type":"t","data":{"x":NaN}}'), 422),
        ("unknown field", {"json": {**ok, "admin": True}, "headers": {"x-api-key": key}}, 422),
        ("text/plain", raw(b"{}", **{"content-type": "text/plain"}), 415),
        ("gzip claimed", raw(b"\x1f\x8bgarbage", **{"content-encoding": "gzip"}), 400),
        ("body over the limit", raw(oversized), 413),
        ("huge header", raw(b"{}", **{"x-big": "a" * 100_000}), 431),
        ("many headers", raw(b"{}", **{f"x-h{i}": "v" for i in range(200)}), 431),
    ]


def test_hostile_requests_get_a_clear_4xx_and_store_nothing(hosts: Settings, user_key: str) -> None:
    before = stored(hosts)
    for name, request, expected in gateway_cases(hosts, user_key):
        started = time.monotonic()
        response = httpx.post(f"{hosts.gateway_url}/v1/events", timeout=10, **request)
        assert time.monotonic() - started < CLEAR_WITHIN_S, name
        assert response.status_code == expected, (name, response.status_code, response.text)
        assert "error" in response.json(), name
    batch = {"events": [{"source": "s", "type": "t", "data": {}}] * (hosts.max_batch_events + 1)}
    response = httpx.post(
        f"{hosts.gateway_url}/v1/events/batch", json=batch, headers={"x-api-key": user_key}
    )
    assert response.status_code == 422, response.text
    assert httpx.post(f"{hosts.gateway_url}/v1/events?{'q' * 20_000}", json={}).status_code == 414
    assert stored(hosts) == before


def test_hostile_websocket_handshakes_and_messages_are_closed(
    hosts: Settings, user_key: str
) -> None:
    base = hosts.gateway_url.replace("http://", "ws://") + "/v1/ws"

    async def outcome(url: str, send: bytes | str | None = None) -> int:
        """The close code (or refused handshake status) within `CLEAR_WITHIN_S`."""
        try:
            async with asyncio.timeout(CLEAR_WITHIN_S):
                async with websockets.connect(url, max_size=None) as ws:
                    if send is not None:
                        await ws.send(send)
                    await ws.recv()
        except websockets.ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd else -1
        except websockets.InvalidStatus as exc:
            return exc.response.status_code
        except TimeoutError:
            return 0
        return 200

    async def all_cases() -> dict[str, int]:
        return {
            "no credential": await outcome(base),
            "unknown key": await outcome(f"{base}?api_key=trb_nope"),
            "admin key": await outcome(f"{base}?api_key={admin.new_key()}"),
            "bad since": await outcome(f"{base}?api_key={user_key}&since=abc"),
            "bad channel": await outcome(f"{base}?api_key={user_key}&channel=admin"),
            "bad cursor": await outcome(f"{base}?api_key={user_key}&channel=jobs&cursor=x;y"),
            "huge message": await outcome(f"{base}?api_key={user_key}", "x" * (20 * 1024 * 1024)),
        }

    before = stored(hosts)
    codes = asyncio.run(all_cases())
    print(f"websocket outcomes: {codes}")
    # Accepted, then closed with 1008 and a reason (a 403 would say "forbidden", not why).
    for name in (
        "no credential",
        "unknown key",
        "admin key",
        "bad since",
        "bad channel",
        "bad cursor",
    ):
        assert codes[name] == 1008, name
    assert codes["huge message"] == 1009, "an oversized message closes with 'message too big'"
    assert stored(hosts) == before


def test_hostile_cli_inputs_fail_clearly(hosts: Settings, tmp_path: Path) -> None:
    env = stack.settings_env(hosts)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "cli", *args],
            env={**env, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        print(f"tributary {args[0]} ... -> {done.returncode} in {time.monotonic() - started:.1f} s")
        return done

    before = stored(hosts)
    read = cli("query", "SELECT * FROM file('/etc/hostname', 'LineAsString')")
    assert read.returncode == 1 and "outward_function" in read.stderr
    write = cli("query", f"SELECT 1 INTO OUTFILE '{tmp_path}/x'")
    assert write.returncode == 1 and "query_refused" in write.stderr
    assert cli("query", "").returncode == 1
    assert cli("replay", "no.such.topic", "--into", "events_ingest").returncode != 0
    assert cli("replay", "events.ingest", "--into", "system.tables").returncode != 0
    keyless = subprocess.run(
        [sys.executable, "-m", "cli", "query", "SELECT 1"],
        env={**env, "TRIBUTARY_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert keyless.returncode == 1 and "401" in keyless.stderr
    assert list(tmp_path.iterdir()) == []
    assert stored(hosts) == before
