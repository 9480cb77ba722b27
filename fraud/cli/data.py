"""`fraudctl data …`: generate, ingest and profile PaySim-schema datasets."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import pyarrow as pa
import typer
from rich.table import Table

from fraud.cli.ui import advance, bytes_progress, console, rows_progress
from fraud.data import ingest as ingest_job
from fraud.data.adapters import get_adapter
from fraud.data.readers import validated_batches
from fraud.data.sources import parse_source
from fraud.errors import ConfigError, SourceError
from fraud.settings import get_settings

app = typer.Typer(
    help="Generate, ingest and profile PaySim-schema transaction data.",
    no_args_is_help=True,
)


def _parse_params(pairs: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--param expects KEY=VALUE, got '{pair}'")
        params[key.strip()] = value.strip()
    return params


@app.command()
def generate(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="File to write: .parquet, .csv or .csv.gz (format by extension).")
    ],
    rows: Annotated[int, typer.Option(min=1, help="Number of transactions (the published month has 6,362,620).")] = (
        1_000_000
    ),
    seed: Annotated[int, typer.Option(help="Random seed; the same seed always gives the same file.")] = 0,
    scenario: Annotated[str, typer.Option(help="Named scenario preset (see `fraudctl data scenarios`).")] = "baseline",
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="Scenario parameter KEY=VALUE; repeat for several."),
    ] = None,
) -> None:
    """Write a synthetic PaySim month, faithful to the published log's statistics."""
    from fraud.data.generator import write
    from fraud.data.scenarios import get_scenario

    chosen = get_scenario(scenario, **_parse_params(param or []))
    with rows_progress() as progress:
        task = progress.add_task("generating", total=rows)
        path = write(output, rows, seed=seed, scenario=chosen, on_progress=advance(progress, task))
    size_mb = path.stat().st_size / 1e6
    console.print(f"wrote {rows:,} rows to [bold]{path}[/] ({size_mb:,.1f} MB, seed {seed}, scenario {scenario})")


@app.command()
def scenarios() -> None:
    """List the generator's scenario presets and their parameters."""
    from fraud.data.scenarios import SCENARIOS

    table = Table("scenario", "what it changes", "parameters (defaults)")
    for name, preset in SCENARIOS.items():
        params = ", ".join(f"{k}={v}" for k, v in preset.params().items()) or "-"
        table.add_row(name, preset.description, params)
    console.print(table)


@app.command()
def ingest(
    source: Annotated[
        str,
        typer.Option(
            help="generator | generator://?rows=N&seed=S&scenario=NAME | PATH (.csv, .csv.gz, .zip, .parquet) | "
            "s3://bucket/key | https://… | kaggle://ealaxi/paysim1"
        ),
    ] = "generator",
    dataset: Annotated[str, typer.Option(help="Dataset adapter (schema and validation rules).")] = "paysim",
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False,
) -> None:
    """Validate a dataset and land it in the S3 store as Parquet with a manifest (a no-op if already there)."""
    settings = get_settings()
    with rows_progress() as rows_bar, bytes_progress() as bytes_bar:
        validate_task = rows_bar.add_task("validating", total=None)
        generate_task = None
        download_task = None

        def on_generated(rows: int) -> None:
            nonlocal generate_task
            if generate_task is None:
                generate_task = rows_bar.add_task("generating", total=None)
            rows_bar.advance(generate_task, rows)

        def on_download(done: int, total: int | None) -> None:
            nonlocal download_task
            if download_task is None:
                download_task = bytes_bar.add_task("downloading", total=total)
            bytes_bar.update(download_task, completed=done)

        result = ingest_job.ingest(
            source,
            settings,
            dataset=dataset,
            on_rows=advance(rows_bar, validate_task),
            on_download=on_download,
            on_generated=on_generated,
        )
    manifest = result.manifest
    if as_json:
        console.print_json(json.dumps(manifest.model_dump()))
        return
    state = "already in the store (identical content), nothing uploaded" if result.already_present else "stored"
    console.print(
        f"[green]✓[/] {manifest.rows:,} rows, {manifest.positives:,} fraud ({manifest.positive_rate:.3%}): {state}"
    )
    console.print(f"  data      {manifest.data_uri}")
    console.print(f"  manifest  {result.manifest_uri}")
    console.print(f"  steps     {manifest.time_min}..{manifest.time_max}   fingerprint {manifest.fingerprint[:16]}")


def _profile_batches(target: str, staging: Path) -> Iterator[pa.RecordBatch]:
    """Validated batches of a local file or of an S3 object / stored manifest."""
    adapter = get_adapter("paysim")
    parsed = parse_source(target)
    settings = get_settings()
    if parsed.kind == "s3" and parsed.location.endswith(".json"):
        manifest = ingest_job.read_manifest(parsed.location, settings)
        parsed = parse_source(manifest.data_uri)
    if parsed.kind not in {"file", "s3", "http"}:
        raise SourceError(f"profile reads a file or an s3:// / http(s):// object, not '{target}'")
    from fraud.data.sources import fetch

    return validated_batches(fetch(parsed, staging, settings), adapter)


@app.command()
def profile(
    target: Annotated[
        str, typer.Argument(help="PaySim-schema file (.csv, .csv.gz, .zip, .parquet), s3:// object or manifest.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the statistics and checks as JSON.")] = False,
    plot: Annotated[
        Path | None, typer.Option(help="Also write the hourly/daily shapes and amount distributions (.png or .html).")
    ] = None,
    summary: Annotated[bool, typer.Option(help="Print only failed checks and a one-line verdict.")] = False,
    strict: Annotated[bool, typer.Option(help="Exit with status 1 when any check fails.")] = False,
) -> None:
    """Compare a dataset's statistics with the published PaySim log (the generator's parity report)."""
    from fraud.data.profile import compare
    from fraud.data.profile import profile as compute_profile

    staging = Path(tempfile.mkdtemp(prefix="profile-"))
    try:
        with rows_progress() as progress:
            task = progress.add_task("profiling", total=None)

            def counted() -> Iterator[pa.RecordBatch]:
                for batch in _profile_batches(target, staging):
                    progress.advance(task, batch.num_rows)
                    yield batch

            stats = compute_profile(counted())
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    checks = compare(stats)
    failed = [c for c in checks if not c.passed]
    if plot is not None:
        from fraud.data.plots import plot_profile

        written = plot_profile(stats, plot)
        console.print(f"plot written to [bold]{written}[/]")
    if as_json:
        console.print_json(json.dumps({"profile": stats.to_dict(), "checks": [c.to_dict() for c in checks]}))
    else:
        table = Table(title=f"{target}: {stats.rows:,} rows vs the published PaySim log", show_lines=False)
        for column in ("statistic", "value", "published", "tolerance", "result"):
            table.add_column(column, justify="left" if column == "statistic" else "right")
        for check in failed if summary else checks:
            verdict = "[green]pass[/]" if check.passed else "[red]FAIL[/]"
            table.add_row(check.name, check.format_value(), check.format_published(), check.format_tolerance(), verdict)
        if not summary or failed:
            console.print(table)
        colour = "green" if not failed else "yellow"
        console.print(f"[{colour}]{len(checks) - len(failed)}/{len(checks)} checks within tolerance[/]")
    if strict and failed:
        raise typer.Exit(1)
