"""`fraudctl monitor …`: the served model's traffic, labels and health.

One function per subcommand, each a thin shell over `monitoring`; the heavy imports happen inside the commands so
`fraudctl --help` stays fast. `status` is built from sections (`_collector_section`, …), one per part of the
monitoring, so each part adds its own without touching the others.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from fraud.cli.ui import console, err_console
from fraud.settings import Settings, get_settings

app = typer.Typer(
    help="Watch the served model: the inference log, late labels, and the collector's health.",
    no_args_is_help=True,
)


@app.command()
def labels(
    source: Annotated[
        str,
        typer.Option(
            "--source",
            "-s",
            help="CSV or Parquet file (local path or s3://bucket/key) with columns request_id, row (optional, "
            "default 0), isFraud (0/1) and optionally labeled_at (RFC 3339).",
        ),
    ],
) -> None:
    """Add late labels (chargebacks, verdicts) to the labels table; they join predictions by request id + row."""
    from monitoring.labels import labels_from_frame, read_source, write_labels

    settings = get_settings()
    with err_console.status(f"reading {source}…"):
        frame = read_source(source, settings)
        table = labels_from_frame(frame, datetime.now(UTC))
    with err_console.status("writing the labels…"):
        uri = write_labels(settings, table)
    frauds = int(sum(table.column("isFraud").to_pylist()))
    console.print(f"added {table.num_rows:,} labels ({frauds:,} fraud) to [bold]{uri}[/]")


def _collector_section(settings: Settings) -> dict[str, Any]:
    """The collector's own counters (``GET /v1/status``), or why it cannot be reached."""
    import requests

    url = settings.collector_endpoint
    try:
        response = requests.get(f"{url}/v1/status", timeout=3.0)
        response.raise_for_status()
        return {"url": url, "up": True, **response.json()}
    except requests.RequestException as exc:
        return {"url": url, "up": False, "error": f"{type(exc).__name__}: {exc}"}


def _print_collector(section: dict[str, Any]) -> None:
    if not section["up"]:
        console.print(f"collector at {section['url']}: [red]not reachable[/] ({section['error']}); run `fraudctl up`")
        return
    table = Table("collector", section["url"], show_header=True)
    for key in (
        "pending_halves",
        "ready_rows",
        "flush_lag_seconds",
        "wal_bytes",
        "wal_segments",
        "remembered_event_ids",
        "last_flush_error",
        "bucket",
    ):
        table.add_row(key.replace("_", " "), str(section.get(key)))
    last = section.get("last_flush_at")
    table.add_row("last flush", datetime.fromtimestamp(last, UTC).isoformat(timespec="seconds") if last else "never")
    console.print(table)


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
) -> None:
    """Show the monitoring's state: the collector (events waiting, flush lag, write-ahead log size)."""
    settings = get_settings()
    sections = {"collector": _collector_section(settings)}
    if as_json:
        console.print_json(json.dumps(sections, default=str))
    else:
        _print_collector(sections["collector"])
    if not sections["collector"]["up"]:
        raise typer.Exit(1)
