"""`fraudctl monitor …`: the served model's traffic, labels, drift, daily report and health.

One function per subcommand, each a thin shell over `monitoring`: read a window (the inference log, or a file
scored here), judge it, keep the result where people and tools look (terminal, JSON, HTML, Prometheus textfile,
alert webhook, MLflow, S3). The heavy imports (pandas, MLflow, Evidently) happen inside the commands so
`fraudctl --help` stays fast. `status` is built from sections (`_collector_section`, `_drift_sections`), one per
part of the monitoring, so each part adds its own without touching the others.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from fraud.cli.ui import console, err_console
from fraud.errors import ConfigError
from fraud.settings import Settings, get_settings
from pipelines.retraining import RETRAIN_FAMILIES, RETRAIN_TRIALS

if TYPE_CHECKING:
    import pandas as pd

    from monitoring.drift import DriftResult
    from monitoring.reference import Reference
    from monitoring.window import Window

app = typer.Typer(
    help="Watch the served model: the inference log, late labels, drift, the daily report, alerts, retraining.",
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


DRIFT_ALERT = "FraudModelDrift"


def _state_dir(settings: Settings) -> Path:
    return settings.home_dir / "monitor"


def parse_time(text: str | None, default: datetime) -> datetime:
    """An ISO 8601 date or date-time (UTC when no zone is given), or a duration back from now: ``24h``, ``7d``."""
    if not text:
        return default
    value = text.strip()
    if value[-1:] in {"h", "d", "m"} and value[:-1].replace(".", "", 1).isdigit():
        unit = {"h": "hours", "d": "days", "m": "minutes"}[value[-1]]
        return datetime.now(UTC) - timedelta(**{unit: float(value[:-1])})
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"'{text}' is neither an ISO date/time (2026-12-06T10:00) nor a duration (24h, 7d)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _logged_window(settings: Settings, since: datetime, until: datetime, version: str | None) -> Window:
    """The logged predictions (of one version, or all) received in [since, until), with their matured labels."""
    import numpy as np

    from monitoring.inference_log import read_log
    from monitoring.labels import labelled_predictions
    from monitoring.window import Window

    log = read_log(settings, since, until, version)
    log = log.loc[log["score"].notna() & log["decision"].notna()].reset_index(drop=True)
    if log.empty:
        return Window(log, f"inference log (version {version or 'all'})", since, until)
    labelled = labelled_predictions(settings, since, until, version, log=log)
    frame = log.merge(labelled.frame[["request_id", "row", "isFraud"]], on=["request_id", "row"], how="left")
    frame["isFraud"] = frame["isFraud"].astype(np.float64)
    return Window(frame, f"inference log (version {version or 'all'})", since, until, labelled.pending)


def load_window(settings: Settings, version: str, since: datetime, until: datetime, current: str | None) -> Window:
    """The window to judge: a file of transactions scored with the version's model, or the inference log."""
    from monitoring.window import Window, read_transactions, score_with_version

    if current:
        with err_console.status(f"reading and validating {current}…"):
            transactions = read_transactions(current, settings)
        with err_console.status(f"scoring {len(transactions):,} transactions with version {version}…"):
            scored = score_with_version(settings, version, transactions)
        return Window(scored, current)
    with err_console.status(f"reading the inference log from {since:%Y-%m-%d %H:%M} to {until:%Y-%m-%d %H:%M}…"):
        return _logged_window(settings, since, until, version)


def _decision_rates(frame: pd.DataFrame) -> dict[str, float]:
    counts = frame["decision"].astype(str).value_counts()
    total = max(len(frame), 1)
    return {name: float(counts.get(name, 0)) / total for name in ("allow", "review", "block")}


def _record(settings: Settings, result: DriftResult, window: Window, now: datetime) -> dict[str, Any]:
    """Keep the verdict: last result, alert state (k windows in a row, webhook), Prometheus textfile."""
    from monitoring import alerts, metrics

    folder = _state_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "last_drift.json").write_text(result.to_json())
    path = folder / "alert-drift.json"
    state = alerts.load(path, DRIFT_ALERT, {"severity": "warning", "model_version": result.reference_version})
    summary = ", ".join(c.name for c in result.drifted) or "no column"
    state = alerts.observe(
        state,
        result.drift,
        now,
        windows=settings.monitor_alert_windows,
        annotations={
            "summary": f"fraud model v{result.reference_version}: drift in {summary}",
            "description": f"{result.rows:,} rows from {window.source}; {result.tests} tests at family alpha "
            f"{result.alpha}; fires after {settings.monitor_alert_windows} drifting windows in a row",
        },
    )
    state = alerts.deliver(state, settings.monitor_alert_webhook)
    alerts.save(path, state)
    lag = None
    if "received_at" in window.frame.columns and len(window.frame):
        import pandas as pd

        newest = pd.to_datetime(window.frame["received_at"], utc=True).max()
        lag = (pd.Timestamp(now) - newest).total_seconds()
    registry = metrics.registry_for(
        result,
        decision_rates=_decision_rates(window.frame),
        event_lag_seconds=lag,
        pending_labels=window.pending_labels,
        alert_firing=state.status == "firing",
    )
    textfile = metrics.write_textfile(registry, folder / "metrics.prom")
    pushed: str | None = None
    if settings.monitor_pushgateway_url:
        try:
            metrics.push(registry, settings.monitor_pushgateway_url)
            pushed = settings.monitor_pushgateway_url
        except OSError as exc:  # the verdict is kept either way; Prometheus's staleness alert notices the gap
            err_console.print(f"[yellow]metrics not pushed to {settings.monitor_pushgateway_url}:[/] {exc}")
    return {
        "status": state.status,
        "bad_windows": state.bad_windows,
        "queued": len(state.outbox),
        "metrics": str(textfile),
        "pushed_to": pushed,
    }


def _print_result(result: DriftResult) -> None:
    table = Table(title=f"drift vs version {result.reference_version} · {result.rows:,} rows · {result.tests} tests")
    for column in ("column", "method", "statistic", "threshold", "p (Holm)", "verdict"):
        table.add_column(column, justify="left" if column in {"column", "method", "verdict"} else "right")
    for c in result.columns:
        if c.segment and not c.drift:
            continue
        verdict = "reported" if not c.tested else ("[bold red]DRIFT[/]" if c.drift else "ok")
        p_adj = "–" if not c.tested else f"{c.p_adjusted:.2g}"
        threshold = "–" if not c.tested else f"{c.threshold:.3g}"
        # escaped: a segment's name such as `amount[type=CASH_IN]` is otherwise read as a rich style tag and dropped
        table.add_row(escape(c.name), c.method, f"{c.statistic:.4g}", threshold, p_adj, verdict)
    console.print(table)
    if result.drift:
        console.print(f"[bold red]drift[/] in {escape(', '.join(c.name for c in result.drifted))}")
    else:
        console.print("[green]no drift[/] (segments without drift are not listed)")


@app.command()
def drift(
    since: Annotated[
        str | None, typer.Option(help="Window start: ISO date/time (UTC) or a duration back from now (24h, 7d).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Window end (exclusive): ISO date/time or duration; default now.")
    ] = None,
    version: Annotated[
        str | None, typer.Option(help="Model version whose reference to compare with; default the served alias.")
    ] = None,
    current: Annotated[
        str | None,
        typer.Option(
            help="Judge this file (CSV/Parquet, local or s3://) of transactions instead of the log; it is "
            "scored with the reference version's model."
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object (the verdict and every column).")
    ] = False,
    html: Annotated[
        Path | None, typer.Option(help="Write the HTML report here (Evidently's report beside it).")
    ] = None,
    evidently: Annotated[
        bool, typer.Option(help="With --html: also run Evidently's report and its default verdicts (slow import).")
    ] = True,
    segments: Annotated[bool, typer.Option(help="Also test per type, arm and model version.")] = True,
    retrain: Annotated[
        bool, typer.Option(help="Apply the retraining policy to this window and submit training when it fires.")
    ] = False,
    kfp_host: Annotated[
        str | None, typer.Option(help="With --retrain: submit to this Kubeflow Pipelines endpoint, not locally.")
    ] = None,
    retrain_trials: Annotated[
        int, typer.Option(min=1, help="With --retrain: tuning trials of the training run.")
    ] = RETRAIN_TRIALS,
    retrain_families: Annotated[
        str, typer.Option(help="With --retrain: model families the training run searches, comma-separated.")
    ] = RETRAIN_FAMILIES,
    publish: Annotated[
        bool,
        typer.Option(
            help="Also store the verdict (drift.json) and the HTML pages in the object store, under "
            "s3://<data bucket>/monitoring/drift/day=…/ (what the cluster's drift CronJob does)."
        ),
    ] = False,
) -> None:
    """Check a window of traffic (default: the last 24 h of the log) for drift against the version's reference."""
    from monitoring import drift_report
    from monitoring.drift import DriftConfig, detect
    from monitoring.reference import load, resolve_version

    settings = get_settings()
    now = datetime.now(UTC)
    end = parse_time(until, now)
    start = parse_time(since, end - timedelta(hours=24))
    if start >= end:
        raise ConfigError(f"--since ({start.isoformat()}) must be before --until ({end.isoformat()})")
    chosen = resolve_version(settings, version)
    with err_console.status(f"loading the reference of version {chosen}…"):
        reference = load(settings, chosen)
    window = load_window(settings, chosen, start, end, current)
    with err_console.status(f"testing {len(window.frame):,} rows…"):
        result = detect(
            window.frame,
            reference,
            DriftConfig(alpha=settings.monitor_alpha),
            segments=segments,
            window_info=window.info(),
        )
    alert = _record(settings, result, window, now)
    output: dict[str, Any] = {**result.to_dict(), "alert": alert}
    if html is not None:
        with err_console.status("writing the HTML report" + (" (running Evidently)…" if evidently else "…")):
            page, evidently_page = drift_report.write(html, result, reference, window.frame, with_evidently=evidently)
        output["html"] = str(page)
        output["evidently_html"] = str(evidently_page) if evidently_page else None
    if retrain:
        output["retrain"] = _retrain(
            settings, result, window, now, kfp_host, retrain_trials, retrain_families, reference=reference
        )
    if publish:
        from monitoring.publish import publish_drift

        pages = [Path(output[key]) for key in ("html", "evidently_html") if output.get(key)]
        with err_console.status("storing the verdict in the object store…"):
            verdict = json.loads(json.dumps(output, default=str))  # what --json prints, as plain JSON
            output["stored_at"] = str(publish_drift(settings, verdict, pages, now))
    if as_json:
        typer.echo(json.dumps(output, indent=2, default=str))
        return
    _print_result(result)
    console.print(f"alert {DRIFT_ALERT}: {alert['status']} ({alert['bad_windows']} drifting window(s) in a row)")
    if html is not None:
        console.print(f"HTML report: [bold]{output['html']}[/]", soft_wrap=True)
        if output.get("evidently_html"):
            console.print(f"Evidently's report: {output['evidently_html']}", soft_wrap=True)
    if publish:
        console.print(f"stored at [bold]{output['stored_at']}[/]", soft_wrap=True)
    if retrain:
        _print_retrain(output["retrain"])


def _print_retrain(outcome: dict[str, Any]) -> None:
    if not outcome["triggered"]:
        console.print(
            f"retraining: not triggered ({outcome['drift_windows']} drifting window(s) in a row, "
            f"{outcome['new_frauds']} new labelled frauds)"
        )
    elif "error" in outcome:
        console.print(f"[red]retraining triggered but the submission failed:[/] {outcome['error']}")
    elif outcome.get("submitted") == "kfp":
        console.print(f"retraining submitted to Kubeflow Pipelines: run {outcome['run_id']}")
    else:
        console.print(
            f"retrained: version [bold]{outcome['version']}[/] is the challenger "
            f"(aliases {', '.join(outcome['aliases'])}); roll it out with: {outcome['canary']}",
            soft_wrap=True,
        )


def _retrain(
    settings: Settings,
    result: DriftResult,
    window: Window,
    now: datetime,
    kfp_host: str | None,
    trials: int = RETRAIN_TRIALS,
    families: str = RETRAIN_FAMILIES,
    *,
    reference: Reference | None = None,
) -> dict[str, Any]:
    """Apply the retraining policy to the window (`monitoring.retrain.check`: sustained drift, or the window's
    measured recall against the reference's), submitting with the pipeline's submitter (`pipelines.retraining`)
    and showing its progress."""
    from monitoring import retrain
    from pipelines.retraining import submitter
    from pipelines.runner import StepEvent

    folder = _state_dir(settings)
    with err_console.status("applying the retraining policy…") as spinner:

        def on_event(event: StepEvent) -> None:
            if event.state in {"started", "progress"}:
                spinner.update(f"retraining: [bold]{event.step}[/] running… {event.detail}")
            else:
                err_console.print(f"  {event.step:<11} {event.state} in {event.seconds:.1f} s")

        submit = submitter(
            settings, folder / "retrain", kfp_host=kfp_host, trials=trials, families=families, on_event=on_event
        )

        def announced(training: retrain.TrainingWindow, reason: str) -> dict[str, Any]:
            err_console.print(
                f"[bold]retraining triggered[/]: {reason}; training on {len(training.table):,} labelled rows "
                f"({training.frauds:,} fraud; log: pipeline-runs/)"
            )
            return submit(training, reason)

        return retrain.check(
            folder / "retrain.json",
            retrain.RetrainPolicy.from_settings(settings),
            result,
            window,
            now,
            announced,
            reference=reference,
        )


@app.command()
def report(
    day: Annotated[str, typer.Option(help="The day to report on, YYYY-MM-DD (UTC).")],
    output: Annotated[Path, typer.Option(help="Directory for report.html and report.json.")] = Path("reports"),
    version: Annotated[
        str | None, typer.Option(help="Version whose reference judges drift; default the served alias.")
    ] = None,
    publish: Annotated[
        bool, typer.Option(help="Also store the report in the object store and on an MLflow run.")
    ] = True,
) -> None:
    """Write the day's report for the fraud team: volumes, decisions, fraud caught/missed, reasons, drift, latency."""
    from monitoring import daily_report, performance
    from monitoring.drift import DriftConfig, detect
    from monitoring.reference import ReferenceError, load, resolve_version

    try:
        moment = date.fromisoformat(day)
    except ValueError:
        raise typer.BadParameter(f"'{day}' is not a date like 2026-12-06", param_hint="--day") from None
    settings = get_settings()
    start = datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
    end = start + timedelta(days=1)
    chosen = resolve_version(settings, version)
    with err_console.status(f"reading {moment} from the inference log…"):
        window = _logged_window(settings, start, end, None)
    frame = window.frame
    if frame.empty:
        raise ConfigError(f"no logged predictions on {moment}; pick another --day (the log keeps days in UTC)")
    served = frame.loc[frame["model_version"].astype(str) == chosen].reset_index(drop=True)
    drift_result = perf = None
    try:
        with err_console.status(f"loading the reference of version {chosen} and testing its traffic for drift…"):
            reference = load(settings, chosen)
            if not served.empty:
                drift_result = detect(
                    served, reference, DriftConfig(alpha=settings.monitor_alpha), window_info=window.info()
                )
    except ReferenceError as exc:
        err_console.print(f"[yellow]no drift section:[/] {exc}")
        reference = None
    labelled = frame["isFraud"].notna() if "isFraud" in frame.columns else None
    served_labelled = served["isFraud"].notna() if "isFraud" in served.columns else None
    if reference is not None and not served.empty:
        if served_labelled is not None and served_labelled.any():
            rows = served.loc[served_labelled]
            perf = performance.measured(
                rows["score"],
                rows["isFraud"],
                rows["amount"],
                reference.thresholds.block,
                reference.thresholds.review_cost,
                days=1.0,
                pending_labels=window.pending_labels,
            )
        elif "isFraud" in reference.scores.columns:
            perf = performance.estimated(
                served["score"],
                served["amount"],
                reference.thresholds.block,
                reference.thresholds.review_cost,
                performance.Calibration.from_reference(reference),
                days=1.0,
                pending_labels=window.pending_labels,
            )
    built = daily_report.build(
        moment,
        frame,
        labels=frame["isFraud"] if labelled is not None and labelled.any() else None,
        pending_labels=window.pending_labels,
        drift=drift_result,
        performance=perf,
    )
    html, data = daily_report.write(built, output)
    console.print(f"daily report for {moment}: [bold]{html}[/] (numbers: {data})", soft_wrap=True)
    if publish:
        from monitoring.publish import publish_report

        with err_console.status("storing the report in S3 and MLflow…"):
            where = publish_report(settings, built, html, data)
        console.print(f"  stored at {where['s3']} and on MLflow run {where['mlflow_run']}", soft_wrap=True)


def _drift_sections(settings: Settings) -> dict[str, Any]:
    """The last drift verdict, the drift alert and the retraining state, from the drift job's state files."""
    folder = _state_dir(settings)
    sections: dict[str, Any] = {}
    last = folder / "last_drift.json"
    if last.is_file():
        data = json.loads(last.read_text())
        sections["drift"] = {k: data[k] for k in ("drift", "rows", "reference_version", "drifted", "window")}
    for name, file in (("alert", "alert-drift.json"), ("retrain", "retrain.json")):
        path = folder / file
        if path.is_file():
            data = json.loads(path.read_text())
            data.pop("outbox", None)
            sections[name] = data
    return sections


def _print_drift(sections: dict[str, Any]) -> None:
    drift_section = sections.get("drift")
    if not drift_section:
        console.print("drift: no check has run yet (`fraudctl monitor drift`, or with --current FILE)")
        return
    drifted = ", ".join(drift_section["drifted"])
    verdict = f"[bold red]DRIFT[/] in {drifted}" if drift_section["drift"] else "[green]no drift[/]"
    console.print(
        f"last drift check: {verdict} · {drift_section['rows']:,} rows · version "
        f"{drift_section['reference_version']} · {drift_section['window'].get('source')}"
    )
    if "alert" in sections:
        alert = sections["alert"]
        console.print(f"alert {alert['name']}: {alert['status']} ({alert['bad_windows']} drifting window(s) in a row)")
    if "retrain" in sections:
        state = sections["retrain"]
        console.print(f"retraining: {len(state['triggers'])} trigger(s); last {state['last_trigger_at']}")


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
) -> None:
    """Show the monitoring's state: the collector, the last drift verdict, the alert and retraining state."""
    settings = get_settings()
    sections = {"collector": _collector_section(settings), **_drift_sections(settings)}
    if as_json:
        console.print_json(json.dumps(sections, default=str))
    else:
        _print_collector(sections["collector"])
        _print_drift(sections)
    if not sections["collector"]["up"]:
        raise typer.Exit(1)
