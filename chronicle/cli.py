"""The `chronicle` command line: the composition root of every process."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

import typer

from chronicle.migrations import all_migrations
from chronicle.runtime import run_until_signalled
from chronicle.topology import declare_broker_topology
from eventstore import EventStoreError
from eventstore.bus import BusError
from eventstore.migrations import migrate as apply_migrations
from eventstore.settings import EventStoreSettings
from eventstore.urls import mask_password

app = typer.Typer(
    help="Chronicle: an event-sourced CQRS backend.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
serve_app = typer.Typer(help="Run one process of the system.", no_args_is_help=True)
app.add_typer(serve_app, name="serve")


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )


@app.command()
def migrate(
    url: Annotated[
        str | None, typer.Option(help="Database URL; default CHRONICLE_EVENTSTORE_URL.")
    ] = None,
) -> None:
    """Create or upgrade every schema (idempotent; safe to run concurrently)."""
    settings = EventStoreSettings()
    _configure_logging(settings.log_level)
    target = url or settings.eventstore_url

    async def run() -> None:
        applied = await apply_migrations(target, all_migrations())
        for step in applied:
            typer.echo(f"applied {step.component} #{step.version} {step.name}")
        typer.echo(f"{mask_password(target)}: schema up to date ({len(applied)} applied)")
        declared = await declare_broker_topology()
        if declared:
            typer.echo(declared)

    try:
        asyncio.run(run())
    except (EventStoreError, BusError) as exc:
        typer.echo(f"chronicle migrate: {exc}", err=True)
        raise typer.Exit(code=2) from exc


@serve_app.command("commands")
def serve_commands() -> None:
    """Serve the write API (port 8000) and run the transfer process manager."""
    from chronicle.run_commands import serve
    from commands.errors import ConfigurationError

    _configure_logging(EventStoreSettings().log_level)
    try:
        run_until_signalled(serve)
    except ConfigurationError as exc:
        typer.echo(f"chronicle serve commands: {exc}", err=True)
        raise typer.Exit(code=2) from exc


@serve_app.command("relay")
def serve_relay() -> None:
    """Publish committed events to the broker, in order (health and metrics on 8003)."""
    from chronicle.run_relay import serve

    _configure_logging(EventStoreSettings().log_level)
    run_until_signalled(serve)


@app.command()
def up() -> None:
    """Run every process in one (embedded SQLite + in-process bus unless configured)."""
    from chronicle.up import serve

    _configure_logging(EventStoreSettings().log_level)
    run_until_signalled(serve)
