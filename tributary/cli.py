"""The `tributary` command: run the stack, its processes, the demo and queries."""

from __future__ import annotations

import sys

import httpx
import orjson
import typer

from tributary.settings import get_settings

cli = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


def _fail(message: str) -> None:
    typer.secho(message, fg="red", err=True)
    raise typer.Exit(1)


@cli.command()
def up() -> None:
    """Start Kafka, Redis, the topics, the projector, a worker and the gateway (idempotent)."""
    from infra.local import stack
    from infra.local.process import ServiceError

    try:
        timings = stack.up(get_settings(), echo=typer.echo)
    except ServiceError as exc:
        _fail(str(exc))
    typer.echo(
        "up in "
        + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items())
        + f"; total {sum(timings.values()):.1f}s"
    )


@cli.command()
def down() -> None:
    """Stop everything `up` started (processes flush and leave their groups first)."""
    from infra.local import stack

    stack.down(get_settings(), echo=typer.echo)


@cli.command()
def status() -> None:
    """Say what runs and whether it is ready."""
    from infra.local import stack

    for name, state in stack.status(get_settings()):
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
    import uvicorn

    settings = get_settings()
    uvicorn.run(
        "gateway.app:create_app",
        factory=True,
        host=settings.gateway_host,
        port=settings.gateway_port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=25,
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


@cli.command()
def query(sql: str) -> None:
    """Run a read-only SQL query on the projector's ClickHouse; print rows as JSON lines."""
    settings = get_settings()
    try:
        response = httpx.post(f"{settings.projector_url}/query", json={"sql": sql}, timeout=60)
    except httpx.HTTPError as exc:
        _fail(f"projector not reachable at {settings.projector_url}: {exc}")
    body = response.json()
    if response.status_code != 200:
        _fail(f"{body.get('error')}: {body.get('message')}")
    typer.echo("\t".join(body["columns"]))
    for row in body["rows"]:
        typer.echo(
            "\t".join(
                orjson.dumps(v).decode() if isinstance(v, dict | list) else str(v) for v in row
            )
        )


@cli.command()
def demo(events: int = 300, users: int = 10) -> None:
    """Send events over HTTP and show what reached ClickHouse through Kafka and Faust."""
    from tributary.demo import run

    try:
        run(get_settings(), events=events, users=users, echo=typer.echo)
    except RuntimeError as exc:
        _fail(str(exc))


def main() -> None:
    cli()
