"""Faults under load, one at a time, and a scoreboard of what became of every request.

A loopback load posts events over HTTP at a steady rate (each with its own number, spread
over users) while one fault is applied, held, and healed: a process SIGKILLed and started
again (worker, projector, gateway), Redis killed (-9) and restarted from its AOF, the Kafka
broker killed (-9) and restarted. Then it reconciles against ClickHouse: every request the
gateway accepted (202) must be in `events_counted` once (lost: never arrived within the
wait; duplicated: more than once; stuck: arrived, but later than `STUCK_AFTER_S` after the
heal), and a request refused (503, a connection refused while the gateway is down) is the
client's to retry, counted apart. Time to recover: from the heal until every event accepted
up to then has arrived (`_inserted`) and a request is accepted again.

    tributary up            # the stack it faults (its processes are killed and restarted)
    .venv/bin/python -m bench.faults --faults worker,projector,gateway,redis,broker

The faults of the issue not here yet (the partition leader on the three-broker cluster,
dockerd, Triton killed or slowed, ClickHouse failing inserts, a full disk, a clock jump)
are listed in bench/RESULTS.md#faults.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import typer

from cli.demo import api_keys, query
from infra.local import kafka, redis, stack
from tributary.settings import Settings

STUCK_AFTER_S = 30.0  # an accepted event that arrives later than this after the heal
LAND_WAIT_S = 120.0  # how long the reconcile waits for accepted events to arrive


Fault = tuple[Callable[[], object], Callable[[], object]]  # (apply, heal)


@dataclass
class Load:
    """What the load generator saw: accepted event numbers and when, refusals by kind."""

    accepted: dict[int, float] = field(default_factory=dict)  # n -> wall time of the 202
    refused: dict[str, int] = field(default_factory=dict)


@dataclass
class Score:
    fault: str
    accepted: int
    refused: int
    lost: int
    duplicated: int
    stuck: int
    recover_s: float


def restart_process(settings: Settings, name: str) -> Fault:
    app = next(a for a in (*stack.APPS, stack.DASHBOARD) if a.name == name)
    proc = stack.managed(settings, app)
    return (
        lambda: proc.stop(timeout_s=0, sig=signal.SIGKILL),
        lambda: print(stack.start_app(settings, app)),
    )


def faults(settings: Settings) -> dict[str, Fault]:
    """Each fault: (apply, heal)."""
    redis_proc = redis.managed(settings)
    broker = kafka.managed(settings)
    return {
        "worker": restart_process(settings, "worker"),
        "projector": restart_process(settings, "projector"),
        "gateway": restart_process(settings, "gateway"),
        "redis": (
            lambda: redis_proc.stop(timeout_s=0, sig=signal.SIGKILL),
            lambda: print(redis.start(settings)),
        ),
        "broker": (
            lambda: broker.stop(timeout_s=0, sig=signal.SIGKILL),
            lambda: print(kafka.start(settings)),
        ),
    }


async def post_load(
    settings: Settings, user_keys: list[str], run: str, rate: float, seconds: float
) -> Load:
    """`rate` events a second for `seconds`, each its own number, round the users' keys."""
    load = Load()
    url = f"{settings.gateway_url}/v1/events"

    async def one(client: httpx.AsyncClient, n: int) -> None:
        body = {"source": "faults", "type": "t.fault", "data": {"n": n, "run": run}}
        headers = {"X-API-Key": user_keys[n % len(user_keys)]}
        try:
            answer = await client.post(url, json=body, headers=headers, timeout=10)
        except httpx.HTTPError as exc:
            kind = type(exc).__name__
            load.refused[kind] = load.refused.get(kind, 0) + 1
            return
        if answer.status_code == 202:
            load.accepted[n] = time.time()
        else:
            kind = str(answer.status_code)
            load.refused[kind] = load.refused.get(kind, 0) + 1

    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=16)) as client:
        started = time.monotonic()
        pending: set[asyncio.Task[None]] = set()
        n = 0
        while time.monotonic() - started < seconds:
            task = asyncio.create_task(one(client, n))
            pending.add(task)
            task.add_done_callback(pending.discard)
            n += 1
            await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
        await asyncio.gather(*pending)
    return load


def landed(settings: Settings, run: str) -> dict[int, tuple[int, float]]:
    """Per event number of `run`: how many rows, and when the last arrived (epoch s)."""
    rows = query(
        settings,
        f"SELECT JSONExtractInt(data, 'data', 'n') AS n, count(), "
        f"toUnixTimestamp64Milli(max(_inserted)) FROM {settings.clickhouse_database}."
        f"events_counted WHERE user_id LIKE 'faults-{run}-%' GROUP BY n",
    )
    return {int(n): (int(c), int(at) / 1000) for n, c, at in rows}


def run_fault(
    settings: Settings,
    name: str,
    apply: Callable[[], object],
    heal: Callable[[], object],
    rate: float,
    hold_s: float,
    users: int = 8,
) -> Score:
    """Load for warm-up + hold + after; the fault applied after the warm-up, healed after
    `hold_s`; then reconcile."""
    run = f"{name}-{uuid.uuid4().hex[:6]}"
    names = [f"faults-{run}-u{i}" for i in range(users)]
    user_keys = list(asyncio.run(api_keys(settings, names)).values())
    warm_s, after_s = 3.0, 10.0
    healed_at = [0.0]

    async def scenario() -> Load:
        loading = asyncio.create_task(
            post_load(settings, user_keys, run, rate, warm_s + hold_s + after_s)
        )
        await asyncio.sleep(warm_s)
        await asyncio.to_thread(apply)
        await asyncio.sleep(hold_s)
        healed_at[0] = time.time()  # recovery counts the restart itself
        await asyncio.to_thread(heal)
        return await loading

    load = asyncio.run(scenario())
    deadline = time.monotonic() + LAND_WAIT_S
    arrived = landed(settings, run)
    while set(load.accepted) - set(arrived) and time.monotonic() < deadline:
        time.sleep(1)
        arrived = landed(settings, run)
    time.sleep(2)  # a duplicate would come after
    arrived = landed(settings, run)
    lost = len(set(load.accepted) - set(arrived))
    duplicated = sum(1 for count, _ in arrived.values() if count > 1)
    stuck = sum(1 for at in (a for _, a in arrived.values()) if at > healed_at[0] + STUCK_AFTER_S)
    # Recovered: everything accepted up to the heal has arrived, and requests are
    # accepted again.
    backlog = [
        arrived[n][1] for n, at in load.accepted.items() if at <= healed_at[0] and n in arrived
    ]
    accepted_after = [t for t in load.accepted.values() if t > healed_at[0]]
    caught_up = max(backlog, default=healed_at[0])
    serving = min(accepted_after, default=float("inf"))
    recover_s = max(caught_up, serving) - healed_at[0]
    return Score(
        name,
        len(load.accepted),
        sum(load.refused.values()),
        lost,
        duplicated,
        stuck,
        max(0.0, recover_s),
    )


def scoreboard(scores: list[Score]) -> str:
    lines = [
        "| fault | accepted | refused (client retries) | lost | duplicated | stuck | recovered in"
        " |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in scores:
        lines.append(
            f"| {s.fault} | {s.accepted} | {s.refused} | {s.lost} | {s.duplicated} | "
            f"{s.stuck} | {s.recover_s:.1f} s |"
        )
    return "\n".join(lines)


def main(
    names: str = typer.Option("worker,projector,gateway,redis,broker", "--faults"),
    rate: float = typer.Option(50.0, help="events per second"),
    hold_s: float = typer.Option(5.0, "--hold", help="seconds each fault is held"),
) -> None:
    settings = Settings()
    print(stack.up(settings, jobs=False))
    table = faults(settings)
    scores = []
    for name in names.split(","):
        apply, heal = table[name]
        scores.append(run_fault(settings, name, apply, heal, rate, hold_s))
        print(scoreboard(scores[-1:]))
    print(scoreboard(scores))


if __name__ == "__main__":
    typer.run(main)
