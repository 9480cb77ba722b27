"""`fraudctl up | down | status`: the local stack (SeaweedFS S3, MLflow, inference-log collector) on 127.0.0.1."""

from __future__ import annotations

import typer
from rich.table import Table

from fraud.cli.ui import console, err_console
from fraud.settings import get_settings, reset_settings
from fraud.stack.local import LocalStack, StackStatus


def _print_status(status: StackStatus) -> None:
    table = Table("service", "state", "pid", "address")
    for service in status.services:
        state = "[green]healthy[/]" if service.healthy else ("[yellow]starting[/]" if service.pid else "[red]down[/]")
        table.add_row(service.name, state, str(service.pid or "-"), service.url)
    console.print(table)
    console.print(f"MLflow UI:   [bold]{status.mlflow_ui}[/]")
    console.print(f"Collector:   {status.collector_url}  (CloudEvents: POST /, labels: POST /v1/labels)")
    console.print(f"S3 endpoint: {status.s3_endpoint}   state in {status.home}")


def up() -> None:
    """Start the local stack (S3 store, MLflow server, inference-log collector) and wait until all are healthy."""
    stack = LocalStack(get_settings())
    with err_console.status("starting the local stack…") as spinner:
        status = stack.up(on_event=spinner.update)
    reset_settings()
    _print_status(status)
    if not status.ok:
        raise typer.Exit(1)


def down() -> None:
    """Stop what `fraudctl up` started (and nothing else); keeps the data."""
    from serving.canary.local import LocalRuntime

    stopped = LocalRuntime(get_settings()).stop_all()  # the rollout's processes first: they use the stack
    stopped += LocalStack(get_settings()).down()
    console.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


def status() -> None:
    """Show what runs where, with the MLflow UI URL; exits 1 when a service is down."""
    current = LocalStack(get_settings()).status()
    _print_status(current)
    if not current.ok:
        err_console.print("[red]the local stack is not fully up[/]: run `fraudctl up`")
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("up")(up)
    app.command("down")(down)
    app.command("status")(status)
