"""The mixed load `bench.faults` puts on a stack while a fault is held, and the reconcile
after it: what became of every request.

The load, per run (fresh users, so nothing of an earlier run is counted):
- events over HTTP at a steady rate, each with its own number `n`, round the users;
- jobs at `job_rate` a second, inference and container starts in turn. A container start
  is sent again with its `Idempotency-Key` while it gets no answer (a polite client), and
  once it has completed the load stops it, as its owner would;
- one WebSocket subscriber per user (`tributary.client.PushClient`: it reconnects and
  resumes by seq), which records the `n` of every event it is pushed.

The reconcile reads ClickHouse (the analysts' truth), the engine, Redis and the command
agent's table (from its changelog):
- every accepted event in `events_counted` once (lost: never; duplicated: more than once;
  stuck: later than `STUCK_AFTER_S` after the heal, or after its acceptance if later), and
  the run's rows there as many as its records on `events.counted`;
- every accepted job with exactly one terminal step (`completed`, `dead_lettered`,
  `rejected`) in `jobs_events`, on the same terms;
- every subscriber pushed each of its user's accepted events once;
- no GPU pool lease, no container of the run on the engine, no quota or in-flight slot in
  the command agent's table once the outcomes are in.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from cli.demo import query
from infra.local import dockerd
from schemas import tables
from schemas.jobs import LABEL_NAMESPACE, LABEL_USER
from schemas.topics import COUNTED
from streams.jobs.admission import UserState
from streams.jobs.runners.gpu_pool import GpuPool
from streams.runtime.state import decode
from tributary import redis_client
from tributary.client import PushClient
from tributary.kafka_clients import read_to_end
from tributary.settings import Settings

STUCK_AFTER_S = 30.0  # an outcome later than this after the heal (or its acceptance)
TERMINAL = ("completed", "dead_lettered", "rejected")


@dataclass
class Load:
    """What the load saw."""

    accepted: dict[int, float] = field(default_factory=dict)  # event n -> time of its 202
    refused: Counter[str] = field(default_factory=Counter)  # why a request was not accepted
    jobs: dict[str, tuple[str, float]] = field(default_factory=dict)  # id -> (kind, accepted)
    containers: list[tuple[str, str]] = field(default_factory=list)  # (user, id) started
    user_of: dict[int, str] = field(default_factory=dict)  # event n -> its user
    received: dict[str, list[int]] = field(default_factory=dict)  # user -> n pushed, in order
    reconnects: int = 0  # subscribers that connected more than once


@dataclass
class Outcome:
    """The reconcile of one kind of request."""

    accepted: int = 0
    lost: int = 0
    duplicated: int = 0
    stuck: int = 0
    rows: int = 0  # every row of the run's, accepted or not (a 503 whose record was written)
    caught_up_at: float = 0.0  # when the last request accepted by then landed (epoch s)


async def _post_events(
    client: httpx.AsyncClient,
    settings: Settings,
    users: dict[str, str],
    run: str,
    rate: float,
    done: asyncio.Event,
    load: Load,
) -> None:
    names = sorted(users)

    async def one(n: int) -> None:
        user = names[n % len(names)]
        body = {"source": "faults", "type": "t.fault", "data": {"n": n, "run": run}}
        try:
            answer = await client.post(
                f"{settings.gateway_url}/v1/events", json=body, headers={"X-API-Key": users[user]}
            )
        except httpx.HTTPError as exc:
            load.refused[type(exc).__name__] += 1
            return
        if answer.status_code == 202:
            load.accepted[n] = time.time()
            load.user_of[n] = user
        else:
            load.refused[str(answer.status_code)] += 1

    await _paced(rate, done, one)


async def _paced(rate: float, done: asyncio.Event, one: Any) -> None:
    """`one(n)` `rate` times a second until `done`, without waiting for the answers."""
    pending: set[asyncio.Task[None]] = set()
    started = time.monotonic()
    n = 0
    while not done.is_set():
        task = asyncio.create_task(one(n))
        pending.add(task)
        task.add_done_callback(pending.discard)
        n += 1
        await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
    await asyncio.gather(*pending)


async def _post_jobs(
    client: httpx.AsyncClient,
    settings: Settings,
    users: dict[str, str],
    rate: float,
    done: asyncio.Event,
    load: Load,
) -> None:
    names = sorted(users)
    stops: set[asyncio.Task[None]] = set()

    async def one(n: int) -> None:
        user = names[n % len(names)]
        headers = {"X-API-Key": users[user], "Idempotency-Key": uuid.uuid4().hex}
        if n % 2 == 0:
            kind, path = "inference", "/v1/inference"
            # A 3 s timeout and room for retries: a slow Triton fails attempts, not the job.
            body: dict[str, Any] = {
                "inputs": [f"fault load sentence {n}"],
                "timeout_s": 3,
                "max_attempts": 10,
            }
        else:
            kind, path = "container", "/v1/containers"
            body = {"image": settings.docker_base_image, "command": ["sleep", "600"]}
        answer = await _until_answered(client, f"{settings.gateway_url}{path}", body, headers)
        if answer is None or answer.status_code != 202:
            load.refused[str(answer.status_code) if answer else "no answer"] += 1
            return
        job_id = answer.json()["job_id"]
        load.jobs[job_id] = (kind, time.time())
        if kind == "container":
            load.containers.append((user, job_id))
            task = asyncio.create_task(_stop_when_started(client, settings, users[user], job_id))
            stops.add(task)

    await _paced(rate, done, one)
    await asyncio.gather(*stops)


async def _until_answered(
    client: httpx.AsyncClient, url: str, body: dict[str, Any], headers: dict[str, str]
) -> httpx.Response | None:
    """POST until an answer other than 503 comes (the same Idempotency-Key each time)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            answer = await client.post(url, json=body, headers=headers)
            if answer.status_code != 503:
                return answer
        await asyncio.sleep(1)
    return None


async def _stop_when_started(
    client: httpx.AsyncClient, settings: Settings, key: str, container_id: str
) -> None:
    """Once the start has an outcome, stop the container (as its owner would)."""
    key_only = {"X-API-Key": key}
    url = f"{settings.gateway_url}/v1/containers/{container_id}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            job = await client.get(
                f"{settings.gateway_url}/v1/jobs/{container_id}", headers=key_only
            )
            if job.status_code == 200 and job.json()["state"] in TERMINAL:
                break
        await asyncio.sleep(1)
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if (await client.delete(url, headers=key_only)).status_code in (202, 404):
                return
        await asyncio.sleep(1)


async def _subscribe(settings: Settings, user: str, key: str, load: Load) -> None:
    client = PushClient(settings.gateway_url, api_key=key, since=0, max_delay_s=2.0)
    received = load.received.setdefault(user, [])
    try:
        async for event in client.events():
            if event.type == "t.fault":
                received.append(int(event.data["n"]))
    finally:
        if client.connections > 1:
            load.reconnects += 1


async def run_load(
    settings: Settings,
    users: dict[str, str],
    run: str,
    rate: float,
    job_rate: float,
    during: Any,
    after_s: float,
) -> Load:
    """The load while `during()` (the fault: applied, held, healed) runs and `after_s`
    more; then waits (up to 120 s) for every subscriber to be pushed its user's accepted
    events."""
    load = Load()
    subscribers = [
        asyncio.create_task(_subscribe(settings, user, key, load)) for user, key in users.items()
    ]
    await asyncio.sleep(1)  # subscribed before the first event
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=32), timeout=10) as client:
        done = asyncio.Event()

        async def fault_then_more() -> None:
            await during()
            await asyncio.sleep(after_s)
            done.set()

        work = [_post_events(client, settings, users, run, rate, done, load), fault_then_more()]
        if job_rate > 0:
            work.append(_post_jobs(client, settings, users, job_rate, done, load))
        await asyncio.gather(*work)
    for _ in range(240):  # up to 120 s for the subscribers to catch up
        if not _missed(load):
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(2)  # a duplicate would come now
    for task in subscribers:
        task.cancel()
    await asyncio.gather(*subscribers, return_exceptions=True)
    return load


def _missed(load: Load) -> int:
    seen = {user: set(ns) for user, ns in load.received.items()}
    return sum(1 for n, user in load.user_of.items() if n not in seen.get(user, set()))


def subscribers(load: Load) -> tuple[int, int]:
    """(events a subscriber missed, events pushed to one more than once)."""
    doubled = sum(
        sum(1 for count in Counter(ns).values() if count > 1) for ns in load.received.values()
    )
    return _missed(load), doubled


def events_outcome(settings: Settings, run: str, load: Load, healed_at: float) -> Outcome:
    """Accepted events against `events_counted`."""
    rows = query(
        settings,
        f"SELECT JSONExtractInt(data, 'data', 'n'), count(), "
        f"toUnixTimestamp64Milli(max(_inserted)) FROM {settings.clickhouse_database}."
        f"events_counted WHERE user_id LIKE 'faults-{run}-%' GROUP BY 1",
    )
    arrived = {int(n): (int(c), int(at) / 1000) for n, c, at in rows}
    outcome = _outcome(load.accepted, arrived, healed_at)
    outcome.rows = sum(count for count, _ in arrived.values())
    return outcome


def jobs_outcome(settings: Settings, load: Load, healed_at: float) -> tuple[Outcome, int]:
    """Accepted jobs against their terminal steps in `jobs_events`; and how many of them
    were dead-lettered."""
    if not load.jobs:
        return Outcome(), 0
    ids = ", ".join(f"'{j}'" for j in load.jobs)
    states = ", ".join(f"'{s}'" for s in TERMINAL)
    rows = query(
        settings,
        f"SELECT job_id, count(), toUnixTimestamp64Milli(max(_inserted)), "
        f"countIf(state = 'dead_lettered') FROM {settings.clickhouse_database}.jobs_events "
        f"WHERE job_id IN ({ids}) AND state IN ({states}) GROUP BY job_id",
    )
    arrived = {str(j): (int(c), int(at) / 1000) for j, c, at, _ in rows}
    dead = sum(int(d) for *_, d in rows)
    return _outcome({j: at for j, (_, at) in load.jobs.items()}, arrived, healed_at), dead


def _outcome(
    accepted: dict[Any, float], arrived: dict[Any, tuple[int, float]], healed_at: float
) -> Outcome:
    out = Outcome(accepted=len(accepted), caught_up_at=healed_at)
    for item, at in accepted.items():
        if item not in arrived:
            out.lost += 1
            continue
        count, landed = arrived[item]
        out.duplicated += count > 1
        out.stuck += landed > max(healed_at, at) + STUCK_AFTER_S
        if at <= healed_at:
            out.caught_up_at = max(out.caught_up_at, landed)
    return out


def records_on_topic(settings: Settings, run: str) -> int:
    """The run's records on `events.counted`, the topic its `events_counted` rows come
    from (ClickHouse's count is held against it)."""
    prefix = f"faults-{run}-".encode()
    topic = COUNTED.physical(settings.namespace)
    records = asyncio.run(read_to_end(settings.kafka_bootstrap, topic))
    return sum(1 for r in records if (r.key or b"").startswith(prefix))


def all_landed(settings: Settings, run: str, load: Load) -> bool:
    """Every accepted event and job has its outcome in ClickHouse."""
    events = events_outcome(settings, run, load, 0.0)
    jobs, _ = jobs_outcome(settings, load, 0.0)
    return events.lost == 0 and jobs.lost == 0


def user_states(settings: Settings) -> dict[str, UserState]:
    """The command agent's table (quota, in-flight slots per user), as its changelog holds
    it: the last committed value of each key."""
    topic = tables.changelog_topic(settings.namespace, tables.USER_STATE)
    found: dict[str, UserState] = {}
    for record in asyncio.run(read_to_end(settings.kafka_bootstrap, topic)):
        decoded = decode(record.key, record.value)
        if decoded is not None:
            found[decoded[0]] = UserState.from_json(decoded[1])
    return found


def left_held(settings: Settings, users: list[str]) -> list[str]:
    """What the run's users still hold in the command agent's table: quota slots
    (containers) and in-flight inference jobs."""
    states = user_states(settings)
    held = []
    for user in users:
        state = states.get(user, UserState())
        held += [f"{user}: container {c}" for c in state.containers]
        held += [f"{user}: in flight {j}" for j in state.in_flight]
    return held


def live_leases(settings: Settings) -> int:
    """GPU pool slots leased now, by every worker (the pool's own count)."""

    async def count() -> int:
        client = redis_client.connect(settings)
        try:
            pool = GpuPool(client, settings.namespace, settings.gpu_pool, settings.gpu_pool_slots)
            return await pool.in_flight()
        finally:
            await client.aclose()

    return asyncio.run(count())


def on_engine(settings: Settings, users: list[str]) -> list[str]:
    """Containers of the run's users still on the engine (running or not)."""
    with dockerd.client(settings) as engine:
        found = engine.containers.list(
            all=True, filters={"label": f"{LABEL_NAMESPACE}={settings.namespace}"}
        )
        return [c.name for c in found if c.labels.get(LABEL_USER) in set(users)]
