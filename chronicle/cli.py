"""The `chronicle` command line: the composition root of every process."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated

import click
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
    """JSON logs and, when the OTEL_* variables ask, tracing (named after the verb)."""
    from chronicle.observability import configure

    context = click.get_current_context(silent=True)
    configure(level, context.info_name if context and context.info_name else "chronicle")


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


def _serve(
    verb: str, serve: Callable[[asyncio.Event], Awaitable[None]], *refusals: type[Exception]
) -> None:
    """Run one process until SIGTERM/SIGINT; a configuration it refuses exits with 2."""
    _configure_logging(EventStoreSettings().log_level)
    try:
        run_until_signalled(serve)
    except refusals as exc:
        typer.echo(f"chronicle serve {verb}: {exc}", err=True)
        raise typer.Exit(code=2) from exc


@serve_app.command("commands")
def serve_commands() -> None:
    """Serve the write API (port 8000) and run the transfer process manager."""
    from chronicle.run_commands import serve
    from commands.errors import ConfigurationError

    _serve("commands", serve, ConfigurationError)


@serve_app.command("relay")
def serve_relay() -> None:
    """Publish committed events to the broker, in order (health and metrics on 8003)."""
    from chronicle.run_relay import serve

    _serve("relay", serve)


@serve_app.command("bridge")
def serve_bridge() -> None:
    """Serve WebSocket fan-out of events, health and the dashboard (port 8002)."""
    from chronicle.run_bridge import serve
    from ws_bridge.errors import ConfigurationError

    _serve("bridge", serve, ConfigurationError)


@app.command()
def load(
    rate: Annotated[float, typer.Option(help="Commands per second.")] = 100.0,
    duration: Annotated[float, typer.Option(help="Seconds of load.")] = 10.0,
    clients: Annotated[int, typer.Option(help="WebSocket clients subscribed.")] = 10,
    accounts: Annotated[int, typer.Option(help="Accounts the deposits spread over.")] = 20,
    commands_url: Annotated[str, typer.Option(help="Command API.")] = "http://127.0.0.1:8000",
    bridge_url: Annotated[str, typer.Option(help="Bridge.")] = "ws://127.0.0.1:8002/v1/ws",
    token: Annotated[
        str | None, typer.Option(envvar="CHRONICLE_LOAD_TOKEN", help="Bearer token, if auth.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON line instead of the table.")
    ] = False,
) -> None:
    """Post deposits at a steady rate while N WebSocket clients listen; print throughput
    and end-to-end latency percentiles (POST due -> event received)."""
    from chronicle.load import LoadPlan, run

    plan = LoadPlan(rate, duration, clients, accounts, commands_url, bridge_url, token)
    if run(plan, as_json=as_json) != 0:
        raise typer.Exit(code=1)


@serve_app.command("projector")
def serve_projector() -> None:
    """Build the read models from events (health and metrics on 8004)."""
    from chronicle.run_projector import serve
    from projections.errors import ProjectionError

    _serve("projector", serve, ProjectionError)


@serve_app.command("queries")
def serve_queries() -> None:
    """Serve the read API over the read models and the event log (port 8001)."""
    from chronicle.run_queries import serve

    _serve("queries", serve)


@app.command("replay")
def replay_projection(
    projection: Annotated[str, typer.Argument(help="account_summary, account_transactions, …")],
    batch_size: Annotated[int, typer.Option(help="Events per transaction.")] = 5000,
) -> None:
    """Rebuild a read model from the log into shadow tables; swap it in when complete."""
    from chronicle.replay_cli import replay
    from projections.errors import ProjectionError

    _configure_logging(EventStoreSettings().log_level)

    async def run(stop: asyncio.Event) -> None:
        result = await replay(projection, stop, batch_size)
        typer.echo(
            f"{result.projection}: {result.events} events in {result.seconds:.2f}s"
            f" ({result.events_per_second:,.0f}/s), swapped in at position {result.position}"
        )

    try:
        run_until_signalled(run)
    except (ProjectionError, EventStoreError) as exc:
        typer.echo(f"chronicle replay: {exc}", err=True)
        raise typer.Exit(code=2) from exc


@app.command()
def up() -> None:
    """Run every process in one (embedded SQLite + in-process bus unless configured)."""
    from chronicle.up import serve

    _configure_logging(EventStoreSettings().log_level)
    run_until_signalled(serve)
