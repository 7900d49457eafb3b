"""The CLI's image commands: `tributary images build`."""

from __future__ import annotations

import typer

from tributary.settings import get_settings

images_cli = typer.Typer(help="Container images built here, from Debian packages and PyPI.")


@images_cli.command("build")
def build(
    names: list[str] = typer.Argument(None, help="Images to build (default: all)"),
    base: str = typer.Option(
        None, "--base", help="Start from this bookworm image (e.g. debian:bookworm-slim)"
    ),
) -> None:
    """Build the Debian base (mmdebstrap) and the images (docker build) on our engine."""
    from infra.local import dockerd, images

    settings = get_settings()
    typer.echo(dockerd.start(settings))
    built = images.build(settings, names or None, echo=typer.echo, from_base=base)
    total = sum(b.seconds for b in built)
    typer.echo(f"{len(built)} image(s) in {total:.1f} s")
