"""The `tributary` command: run the stack, its processes, the demo and queries."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import httpx
import orjson
import typer

from tributary import admin
from tributary.settings import Settings, get_settings

if TYPE_CHECKING:
    from schemas.dead_letters import Letter

# Plain tracebacks: a crashed process's log is read by people and CI, not a terminal.
cli = typer.Typer(
    no_args_is_help=True, add_completion=False, help=__doc__, pretty_exceptions_enable=False
)


def _fail(message: str) -> NoReturn:
    typer.secho(message, fg="red", err=True)
    raise typer.Exit(1)


BROKERS = typer.Option(None, help="Kafka nodes (TRIBUTARY_KAFKA_BROKERS); 3: RF 3")
GATEWAYS = typer.Option(None, help="Gateways (TRIBUTARY_GATEWAYS); 2+: behind haproxy")
WORKERS = typer.Option(None, help="Stream workers (TRIBUTARY_WORKERS)")


def _shaped(brokers: int | None, gateways: int | None, workers: int | None) -> Settings:
    """The settings, with the stack's shape the flags give (validated like the env's)."""
    asked = {"kafka_brokers": brokers, "gateways": gateways, "workers": workers}
    chosen = {k: v for k, v in asked.items() if v is not None}
    return Settings.model_validate({**get_settings().model_dump(), **chosen})


COMPOSE = typer.Option(
    False, "--compose", help="docker-compose.yml from our images instead of local processes"
)
TRACING = typer.Option(
    False,
    "--tracing",
    help="Start Jaeger (built from Go modules, cached) and send every process's spans there",
)


@cli.command()
def up(
    brokers: int = BROKERS,
    gateways: int = GATEWAYS,
    workers: int = WORKERS,
    compose: bool = COMPOSE,
    tracing: bool = TRACING,
) -> None:
    """Start Kafka, Redis, the topics, the projector, workers and gateways (idempotent).

    Give `status` the same flags (or settings); `down` stops whatever it finds. With
    --compose: the production docker-compose.yml, from images built here."""
    from infra.local import compose as compose_run
    from infra.local import stack
    from infra.local.process import ServiceError

    try:
        if compose:
            timings = compose_run.up(get_settings(), echo=typer.echo)
        else:
            settings = _shaped(brokers, gateways, workers)
            if tracing:
                from infra.local import jaeger

                settings = settings.model_copy(update={"otlp_endpoint": jaeger.OTLP_ENDPOINT})
            timings = stack.up(settings, echo=typer.echo)
    except ServiceError as exc:
        _fail(str(exc))
    typer.echo(
        "up in "
        + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items())
        + f"; total {sum(timings.values()):.1f}s"
    )


@cli.command()
def down(
    brokers: int = BROKERS,
    gateways: int = GATEWAYS,
    workers: int = WORKERS,
    compose: bool = COMPOSE,
) -> None:
    """Stop everything `up` started (processes flush and leave their groups first)."""
    from infra.local import compose as compose_run
    from infra.local import stack

    if compose:
        typer.echo(compose_run.down(get_settings()))
        return
    stack.down(_shaped(brokers, gateways, workers), echo=typer.echo)


@cli.command()
def status(brokers: int = BROKERS, gateways: int = GATEWAYS, workers: int = WORKERS) -> None:
    """Say what runs and whether it is ready."""
    from infra.local import stack

    for name, state in stack.status(_shaped(brokers, gateways, workers)):
        typer.echo(f"{name:<10} {state}")


@cli.command()
def topics() -> None:
    """Create the registry's topics that are missing on the broker."""
    from infra.local import kafka

    for name in kafka.ensure_topics(get_settings()):
        typer.echo(name)


@cli.command()
def gateway() -> None:
    """Run the HTTP gateway in the foreground (uvicorn)."""
    import signal

    import uvicorn

    from tributary.http_edge import EdgeProtocol

    settings = get_settings()
    # uvicorn re-raises SIGTERM once its graceful shutdown is done; a handler of ours
    # receives it, so a drained, flushed gateway exits 0 instead of "killed by SIGTERM".
    signal.signal(signal.SIGTERM, lambda *_: None)
    uvicorn.run(
        "gateway.app:create_app",
        factory=True,
        host=settings.gateway_host,
        port=settings.gateway_port,
        workers=settings.gateway_workers,
        log_level=settings.log_level.lower(),
        access_log=False,
        # Nothing here reads the client's address or scheme, and the bare ASGI app under
        # wrk answered 10 to 15 % more requests/s without these two (bench/RESULTS.md).
        proxy_headers=False,
        server_header=False,
        # URL, header and slow-client limits, enforced while parsing (tributary/http_edge.py).
        http=EdgeProtocol,
        ws=settings.gateway_ws,
        ws_per_message_deflate=settings.gateway_ws_compression,
        # WebSocket keepalive (`WS /v1/ws`): a ping every interval, closed without a pong.
        ws_ping_interval=settings.push_ping_interval_s,
        ws_ping_timeout=settings.push_ping_timeout_s,
        # After the drain (`TRIBUTARY_SHUTDOWN_DRAIN_S`, at most 10 s): exit within 30 s.
        timeout_graceful_shutdown=20,
    )


@cli.command()
def worker() -> None:
    """Run a Faust stream worker in the foreground."""
    from streams.worker import run

    sys.argv = [sys.argv[0], "worker"]
    run(get_settings())


@cli.command()
def projector() -> None:
    """Run the ClickHouse projector (and its query endpoint) in the foreground."""
    from projections.service import run

    run(get_settings())


@cli.command("rebuild-redis")
def rebuild_redis(
    store: str = typer.Option("all", help="status, push, or all"),
) -> None:
    """Rewind the projector's Redis stores to their topics' beginning (projector stopped):
    started again, it projects job and container status and push history once more."""
    from projections.rebuild import STORES, GroupActive, rewind

    chosen = list(STORES) if store == "all" else [store]
    if any(name not in STORES for name in chosen):
        _fail(f"--store must be one of {', '.join(STORES)} or all")
    settings = get_settings()
    for name in chosen:
        try:
            rewound = asyncio.run(rewind(settings, name))
        except GroupActive as exc:
            _fail(str(exc))
        typer.echo(f"{name}: {len(rewound)} partitions rewound; start the projector to rebuild")


@cli.command()
def dashboard() -> None:
    """Run the admin dashboard (DLQ, jobs, lag, charts; the admin key logs in)."""
    import uvicorn

    from dashboard.app import create_app
    from tributary.logging import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.dashboard_host,
        port=settings.dashboard_port,
        log_level="warning",
        server_header=False,
    )


@cli.command()
def query(sql: str) -> None:
    """Run a read-only SQL query on the projector's ClickHouse; print rows as JSON lines."""
    from cli.demo import post_query

    settings = get_settings()
    try:
        response = post_query(settings, sql)
    except httpx.HTTPError as exc:
        _fail(f"projector not reachable at {settings.projector_url}: {exc}")
    body = response.json()
    if response.status_code != 200:
        detail = body.get("reason") or body.get("limit")
        _fail(
            f"{response.status_code} {body.get('error')}"
            + (f" ({detail})" if detail else "")
            + f": {body.get('message')}"
        )
    typer.echo("\t".join(body["columns"]))
    for row in body["rows"]:
        typer.echo(
            "\t".join(
                orjson.dumps(v).decode() if isinstance(v, dict | list) else str(v) for v in row
            )
        )


@cli.command()
def replay(
    topic: str = typer.Argument(help="Logical topic, e.g. events.ingest"),
    into: str = typer.Option(..., "--into", help="The table to rebuild, e.g. events_ingest"),
    start: str = typer.Option(None, "--from", help="Start offset or ISO timestamp"),
    end: str = typer.Option(None, "--to", help="End offset (exclusive) or ISO timestamp"),
) -> None:
    """Rebuild TABLE from TOPIC's history into a new table, check it, swap it in atomically."""
    from projections.tables import for_topic

    try:
        table = for_topic(topic).table
    except KeyError as exc:
        _fail(str(exc))
    if table != into:
        _fail(f"topic {topic} projects into {table}, not {into}")
    settings = get_settings()

    def bound(value: str | None) -> int | str | None:
        return int(value) if value is not None and value.isdigit() else value

    body = {"topic": topic, "from": bound(start), "to": bound(end)}
    with httpx.Client(
        base_url=settings.projector_url, headers=admin.client_headers(settings), timeout=30
    ) as client:
        started = client.post("/replays", json=body)
        if started.status_code != 202:
            _fail(f"replay refused: {started.text}")
        replay_id = started.json()["id"]
        status = started.json()
        with typer.progressbar(length=max(status["total"], 1), label="replaying") as bar:
            done = 0
            while status["state"] in ("running", "swapping"):
                time.sleep(0.5)
                status = client.get(f"/replays/{replay_id}").json()
                bar.length = max(status["total"], 1)
                bar.label = f"{status['rows_per_s']:>8} rows/s  eta {status['eta_s'] or 0:>5}s"
                bar.update(status["read"] - done)
                done = status["read"]
    if status["state"] != "done":
        _fail(f"replay {replay_id} failed: {status['error']}")
    typer.echo(
        f"replay {replay_id}: {status['inserted']} rows from {status['read']} records "
        f"({status['skipped']} skipped) + {status['caught_up']} caught up, in "
        f"{status['elapsed_s']}s; {into} swapped"
    )


@cli.command("secrets")
def make_secrets(
    folder: Path = typer.Argument(
        help="Where to write them (docker-compose.yml reads "
        "TRIBUTARY_SECRETS_DIR, ./secrets by default)"
    ),
) -> None:
    """Make the secret files docker-compose.yml mounts (existing ones are kept): an admin
    key and its SHA-256, and the ClickHouse passwords. Values are never printed."""
    from infra.local.compose import write_secrets

    made = write_secrets(folder)
    typer.echo(
        f"{folder}: made {', '.join(made) or 'nothing (all there)'}; the admin key is "
        f"{folder / 'admin-key'}"
    )


@cli.command("admin-key")
def admin_key() -> None:
    """Make an admin key for the projector's query and replay API: the key, for clients
    (TRIBUTARY_ADMIN_KEY), then its SHA-256, for servers (TRIBUTARY_ADMIN_KEY_SHA256)."""
    key = admin.new_key()
    typer.echo(key)
    typer.echo(admin.hash_key(key))


apikey = typer.Typer(help="API keys (only their hashes are stored, in Redis).")
cli.add_typer(apikey, name="apikey")


@apikey.command("create")
def apikey_create(user_id: str) -> None:
    """Create an API key for USER_ID and print it (it cannot be shown again)."""
    import asyncio

    from gateway.auth import create_api_key
    from tributary import redis_client

    settings = get_settings()

    async def make() -> str:
        client = redis_client.connect(settings)
        try:
            return await create_api_key(client, settings.namespace, user_id)
        finally:
            await client.aclose()

    try:
        typer.echo(asyncio.run(make()))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="USER_ID") from exc


dlq = typer.Typer(help="The dead-letter topic: records no agent could process.")
cli.add_typer(dlq, name="dlq")


def _letters() -> list[Letter]:
    import asyncio

    from streams import dlq_admin

    return asyncio.run(dlq_admin.read(get_settings()))


def _letter_at(position: str) -> Letter:
    """The dead letter at PARTITION:OFFSET, or exit with an error saying there is none."""
    letter = next((d for d in _letters() if d.position == position), None)
    if letter is None:
        _fail(f"no dead letter at {position}")
    return letter


@dlq.command("list")
def dlq_list() -> None:
    """One line per dead letter: position, reason, event type and id."""
    from schemas import headers as h
    from schemas.envelope import header_value

    letters = _letters()
    for d in letters:
        ce_type = header_value(d.headers, h.CE_TYPE) or "-"
        ce_id = header_value(d.headers, h.CE_ID) or "-"
        typer.echo(f"{d.position:<10} {d.reason:<20} {ce_type:<24} {ce_id}  {d.error[:60]}")
    typer.echo(f"{len(letters)} dead letter(s)")


@dlq.command("show")
def dlq_show(position: str = typer.Argument(help="PARTITION:OFFSET, as `dlq list` prints")) -> None:
    """A dead letter in full: headers, key and value."""
    letter = _letter_at(position)
    typer.echo(f"position: {letter.position}\nreason:   {letter.reason}\nerror:    {letter.error}")
    typer.echo(f"key:      {letter.key!r}")
    for name, value in letter.headers:
        typer.echo(f"header    {name}: {value.decode(errors='replace')}")
    typer.echo(f"value:    {(letter.value or b'').decode(errors='replace')}")


@dlq.command("retry")
def dlq_retry(position: str = typer.Argument(help="PARTITION:OFFSET")) -> None:
    """Send one dead letter's original record back to the topic it came from."""
    import asyncio

    from streams import dlq_admin

    letter = _letter_at(position)
    for line in asyncio.run(dlq_admin.retry(get_settings(), [letter])):
        typer.echo(str(line))


@dlq.command("retry-all")
def dlq_retry_all(reason: str = typer.Option(None, help="Only letters with this reason")) -> None:
    """Send every dead letter (or those with REASON) back to its origin topic."""
    import asyncio

    from streams import dlq_admin

    letters = [d for d in _letters() if reason is None or d.reason == reason]
    placed = asyncio.run(dlq_admin.retry(get_settings(), letters))
    for line in placed:
        typer.echo(str(line))
    typer.echo(f"retried {sum(1 for p in placed if p.sent)} of {len(letters)}")


@dlq.command("purge")
def dlq_purge(yes: bool = typer.Option(False, "--yes", help="Do it without asking")) -> None:
    """Delete every dead letter now on the topic."""
    import asyncio

    from streams import dlq_admin

    if not yes and not typer.confirm("Delete every dead letter?"):
        raise typer.Exit(1)
    typer.echo(f"purged {asyncio.run(dlq_admin.purge(get_settings()))}")


ch = typer.Typer(help="ClickHouse schema.")
cli.add_typer(ch, name="ch")


@ch.command("migrate")
def ch_migrate() -> None:
    """Apply pending ClickHouse migrations (the projector also does this at start)."""
    from infra.local.stack import url_ok
    from projections.clickhouse import connect
    from projections.migrations import MIGRATIONS, migrate

    settings = get_settings()
    if not settings.clickhouse_url and url_ok(f"{settings.projector_url}/healthz/live"):
        # chDB: the running projector owns the folder and migrated it when it started.
        from cli.demo import query as remote_query

        rows = remote_query(
            settings, f"SELECT version FROM {settings.clickhouse_database}._migrations"
        )
        done = sorted(r[0] for r in rows)
        pending = [v for v, _, _ in MIGRATIONS if v not in done]
        typer.echo(f"projector owns chDB; applied {done}; pending {pending} (restart it to apply)")
        return
    applied = migrate(connect(settings))
    typer.echo(f"applied {applied}" if applied else "up to date")


def _contracts() -> None:
    from cli.contracts import schemas_cli, tail

    cli.command("tail")(tail)
    cli.add_typer(schemas_cli, name="schemas")

    from cli.images import images_cli

    cli.add_typer(images_cli, name="images")


_contracts()


@cli.command()
def demo(events: int = 300, users: int = 10) -> None:
    """Send events over HTTP and show what reached ClickHouse through Kafka and Faust."""
    from cli.demo import run

    try:
        run(get_settings(), events=events, users=users, echo=typer.echo)
    except RuntimeError as exc:
        _fail(str(exc))


def main() -> None:
    cli()
