"""`fraudctl replay`: send transactions to a predictor or the canary splitter at a steady rate (open loop).

A thin shell over `serving.canary.replay`: it loads the transactions, prints a progress line every second and a
table of what came back (decisions by arm and model version, latency percentiles, errors) at the end.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from fraud.cli.data import _parse_params
from fraud.cli.ui import console, err_console
from fraud.errors import ConfigError
from fraud.settings import Settings, get_settings

EPILOG = """Examples:

  fraudctl replay --endpoint http://127.0.0.1:8080 --scenario baseline --rate 100 --duration 30

  fraudctl replay --endpoint http://127.0.0.1:8080 --source data/paysim-demo.parquet --rate 200 --duration 60 \\
    --labels-after 10 --json
"""


def default_labels_url(settings: Settings) -> str | None:
    """The local collector's labels endpoint, when the settings know a collector port."""
    port = getattr(settings, "collector_port", None)
    return f"http://{settings.stack_host}:{port}/v1/labels" if isinstance(port, int) else None


def _print_summary(result: dict[str, Any]) -> None:
    table = Table("arm", "model version", "requests", "allow", "review", "block", title=f"answers from {result['url']}")
    for row in result["by_arm"]:
        decisions = row["decisions"]
        table.add_row(
            row["arm"],
            row["model_version"],
            f"{row['requests']:,}",
            *(f"{decisions.get(name, 0):,}" for name in ("allow", "review", "block")),
        )
    console.print(table)
    latency = result["latency_ms"]
    if latency["p50"] is not None:
        console.print(
            f"latency (from the time each request was due): p50 {latency['p50']:.2f} ms, p90 {latency['p90']:.2f} ms, "
            f"p99 {latency['p99']:.2f} ms, max {latency['max']:.2f} ms"
        )
    console.print(
        f"sent {result['sent']:,} of {result['planned']:,} in {result['duration_s']:.1f} s "
        f"({result['achieved_rate']} r/s), ok {result['ok']:,}, failed {result['failed']:,}"
    )
    for error, count in result["errors"].items():
        console.print(f"  [red]{count:,}×[/] {error}", highlight=False)
    labels = result["labels"]
    if labels["posted"]:
        console.print(
            f"labels: posted {labels['posted']:,}, accepted {labels['accepted']:,}, unknown {labels['unknown']:,}, "
            f"failed {labels['failed']:,}"
        )


def replay(
    endpoint: Annotated[
        str,
        typer.Option(help="Base URL of a predictor or the canary splitter (or a full :predict / /infer URL)."),
    ],
    rate: Annotated[float, typer.Option(min=0.001, help="Requests per second (open loop: the pace never slows).")],
    duration: Annotated[float, typer.Option(min=0.001, help="Seconds to send for; rate × duration requests.")],
    source: Annotated[
        str | None,
        typer.Option(help="Transactions to send: a file (.parquet/.csv), s3:// or http(s):// URI, or generator://…"),
    ] = None,
    scenario: Annotated[
        str | None,
        typer.Option(help="Generate rate × duration transactions with this preset (see `fraudctl data scenarios`)."),
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="Scenario parameter KEY=VALUE; repeat for several.")
    ] = None,
    seed: Annotated[int, typer.Option(min=0, help="Generator seed for --scenario.")] = 0,
    protocol: Annotated[str, typer.Option(help="Request protocol: v1 or v2 (KServe REST).")] = "v1",
    labels_after: Annotated[
        float | None,
        typer.Option(min=0.0, help="Post each transaction's isFraud label this many seconds after sending it."),
    ] = None,
    labels_url: Annotated[
        str | None,
        typer.Option(help="Collector labels endpoint (default: the local collector's /v1/labels)."),
    ] = None,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds before a request counts as failed.")] = 10.0,
    connections: Annotated[int, typer.Option(min=1, max=4096, help="Most connections open at once.")] = 64,
    record: Annotated[
        Path | None, typer.Option(help="Also write one JSON line per request (id, status, arm, version, decision).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Send transactions to ENDPOINT at a steady rate and print decisions by arm, latency and errors."""
    from serving.canary.replay import Answer, ReplayConfig, ReplaySummary, load_transactions, predict_url
    from serving.canary.replay import replay as run_replay

    if protocol not in ("v1", "v2"):
        raise ConfigError(f"--protocol must be v1 or v2, got '{protocol}'")
    settings = get_settings()
    if labels_after is not None and labels_url is None:
        labels_url = default_labels_url(settings)
    config = ReplayConfig(
        url=predict_url(endpoint, "v1" if protocol == "v1" else "v2", settings.model_name),
        rate=rate,
        duration_s=duration,
        protocol="v1" if protocol == "v1" else "v2",
        timeout_s=timeout,
        max_connections=connections,
        labels_after_s=labels_after,
        labels_url=labels_url,
    )
    with err_console.status("loading transactions…"):
        transactions = load_transactions(
            settings,
            source=source,
            scenario=scenario,
            rows=config.planned,
            seed=seed,
            scenario_params=_parse_params(param or []),
        )
    err_console.print(
        f"replaying {config.planned:,} requests at {rate:g}/s to {config.url} ({len(transactions):,} rows)"
    )

    def progress(summary: ReplaySummary, elapsed: float) -> None:
        p50 = summary.percentiles()["p50"]
        err_console.print(
            f"  {elapsed:6.1f} s  sent {summary.sent:>7,}/{summary.planned:,}  ok {summary.ok:>7,}  "
            f"failed {summary.sent - summary.ok:>5,}  p50 {p50 or 0:.1f} ms",
            highlight=False,
        )

    sink = record.open("w", encoding="utf-8") if record is not None else None
    try:

        def write(answer: Answer) -> None:
            if sink is not None:
                sink.write(json.dumps(answer.to_json()) + "\n")

        summary = run_replay(config, transactions, on_progress=progress, on_answer=write)
    finally:
        if sink is not None:
            sink.close()
    result = summary.to_json()
    if as_json:
        console.print_json(json.dumps(result))
    else:
        _print_summary(result)
    if summary.sent and summary.ok == 0:
        err_console.print(f"[red]no request succeeded[/]: is a predictor serving at {endpoint}? (`fraudctl serve`)")
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("replay", epilog=EPILOG)(replay)
