"""The CLI's contract commands: `tributary tail` (read a topic) and `tributary schemas`."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import orjson
import typer

from tributary.settings import Settings, get_settings

schemas_cli = typer.Typer(help="The published JSON Schemas of every record type.")


def tail(
    topic: str = typer.Argument(help="A topic: its logical name (events.counted) or full name"),
    user: str = typer.Option(None, "--user", help="Only this user's records (the key)"),
    event_type: str = typer.Option(None, "--type", help="Only this CloudEvents type (a glob)"),
    from_beginning: bool = typer.Option(False, "--from-beginning", help="Start at the oldest"),
    since: str = typer.Option(None, "--since", help="Start at a time: 10m, 2h, 1d or ISO 8601"),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep reading new records"),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line"),
) -> None:
    """Print a topic's records as CloudEvents, like kcat: read_committed, no consumer group.

    Without --from-beginning or --since it starts at the end and follows. Otherwise it
    stops at the end it saw on start, unless --follow."""
    from tributary import tail as reader

    if from_beginning and since:
        raise typer.BadParameter("--from-beginning or --since, not both")
    try:
        start = reader.parse_since(since) if since else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    settings = get_settings()
    physical = reader.physical_topic(topic, settings.namespace)
    colour = sys.stdout.isatty() and not as_json

    async def run() -> int:
        shown = 0
        async for record in reader.read(
            settings.kafka_bootstrap,
            physical,
            from_beginning=from_beginning,
            since=start,
            follow=follow,
        ):
            if not reader.select(record, user, event_type):
                continue
            if as_json:
                line = orjson.dumps(reader.as_json(record)).decode()
            else:
                line = reader.pretty(record, typer.style if colour else reader._plain)
            typer.echo(line)
            shown += 1
        return shown

    try:
        shown = asyncio.run(run())
    except KeyboardInterrupt:
        return
    if not as_json:
        typer.echo(f"{shown} record(s)", err=True)


@schemas_cli.command("export")
def export(
    check: bool = typer.Option(False, "--check", help="Change nothing; exit 1 if stale"),
) -> None:
    """Write schemas/published/<type>/<version>.json and docs/topics.md from the models."""
    from schemas import publishing, topic_docs

    breaking, stale = publishing.check()
    for line in breaking:
        typer.echo(f"breaking: {line}", err=True)
    if breaking:
        typer.echo("bump the version of each type above instead (docs/subscribers.md)", err=True)
        raise typer.Exit(1)
    docs = Path(publishing.PUBLISHED).parents[1] / "docs" / "topics.md"
    text = topic_docs.markdown(Settings.model_fields["partitions"].default)
    docs_stale = not docs.exists() or docs.read_text() != text
    if check:
        for line in stale + ([f"{docs} is stale"] if docs_stale else []):
            typer.echo(f"stale: {line}", err=True)
        raise typer.Exit(1 if stale or docs_stale else 0)
    for path in publishing.export():
        typer.echo(f"wrote {path}")
    if docs_stale:
        docs.write_text(text)
        typer.echo(f"wrote {docs}")
