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
from fraud.errors import ConfigError, FraudError
from fraud.settings import Settings, get_settings

if TYPE_CHECKING:
    import pandas as pd

    from monitoring.drift import DriftResult
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
RETRAIN_TRIALS = 8
RETRAIN_FAMILIES = "xgboost,hist_gb,logreg"


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
        output["retrain"] = _retrain(settings, result, window, now, kfp_host, retrain_trials, retrain_families)
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
) -> dict[str, Any]:
    """Feed the window to the retraining policy; submit the training pipeline on the window when it fires.

    The trigger is saved before the submission (so a failed run still starts the cooldown), then its outcome is
    attached to it: the new version, or the error.
    """
    import numpy as np

    from monitoring import retrain

    path = _state_dir(settings) / "retrain.json"
    policy = retrain.RetrainPolicy(
        sustained_windows=settings.monitor_alert_windows,
        min_new_frauds=settings.monitor_retrain_min_frauds,
        cooldown=timedelta(hours=settings.monitor_retrain_cooldown_hours),
    )
    labels = window.frame["isFraud"].to_numpy(dtype=np.float64) if "isFraud" in window.frame.columns else np.empty(0)
    new_frauds = int(np.nansum(labels > 0))
    state, trigger = retrain.observe(
        retrain.load(path),
        policy,
        now=now,
        drift=result.drift,
        drifted=[c.name for c in result.drifted],
        new_frauds=new_frauds,
        window=window.info(),
    )
    retrain.save(path, state)
    if trigger is None:
        return {"triggered": False, "drift_windows": state.drift_windows, "new_frauds": state.new_frauds}
    err_console.print(f"[bold]retraining triggered[/]: {trigger.reason}")
    try:
        submitted = submit_retraining(
            settings, window.frame, kfp_host, reason=trigger.reason, trials=trials, families=families
        )
    except FraudError as exc:
        retrain.save(path, retrain.record_result(state, {"error": str(exc)}))
        return {"triggered": True, "reason": trigger.reason, "error": str(exc)}
    retrain.save(path, retrain.record_result(state, submitted))
    return {"triggered": True, "reason": trigger.reason, **submitted}


def training_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The window's labelled rows in the dataset's format, for the training pipeline.

    Post-transaction balances are not logged (the model never reads them); they are filled with the
    balance the transaction implies, and ``isFlaggedFraud`` with 0, so the file passes the dataset's contract.
    """
    import numpy as np

    from fraud.schema import COLUMNS

    labelled = frame.loc[frame["isFraud"].notna()].copy()
    if labelled.empty:
        raise ConfigError("the window has no labelled rows to retrain on; wait for labels (fraudctl monitor labels)")
    amount = labelled["amount"].to_numpy(dtype=np.float64)
    incoming = (labelled["type"] == "CASH_IN").to_numpy()
    orig = labelled["oldbalanceOrg"].to_numpy(dtype=np.float64)
    dest = labelled["oldbalanceDest"].to_numpy(dtype=np.float64)
    if "newbalanceOrig" not in labelled.columns or labelled["newbalanceOrig"].isna().any():
        labelled["newbalanceOrig"] = np.where(incoming, orig + amount, np.maximum(orig - amount, 0.0))
    if "newbalanceDest" not in labelled.columns or labelled["newbalanceDest"].isna().any():
        labelled["newbalanceDest"] = np.where(incoming, np.maximum(dest - amount, 0.0), dest + amount)
    labelled["isFraud"] = labelled["isFraud"].astype(np.int8)
    labelled["isFlaggedFraud"] = np.int8(0)
    labelled["step"] = labelled["step"].astype(np.int32)
    table: pd.DataFrame = labelled[list(COLUMNS)].sort_values("step", kind="stable").reset_index(drop=True)
    return table


def submit_retraining(
    settings: Settings,
    frame: pd.DataFrame,
    kfp_host: str | None,
    *,
    reason: str,
    trials: int = RETRAIN_TRIALS,
    families: str = RETRAIN_FAMILIES,
) -> dict[str, Any]:
    """Train on the window: the same run `fraudctl pipeline run` does (or a KFP run on a cluster).

    The window's steps are split forward in time (`monitoring.retrain.forward_split`: about 70 % train, 15 %
    validation, 15 % test, each later block holding fraud); the
    new version is registered as ``challenger`` (tagged with the trigger's reason), where the canary rollout
    picks it up: the champion serving *before* the run is recorded, because the pipeline's offline gate may
    already move the champion alias, and the rollout must compare the new version with what served traffic.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from fraud.schema import ARROW_SCHEMA
    from monitoring.retrain import forward_split
    from pipelines.runner import compile_pipeline, run_local, submit

    table = training_table(frame)
    train_end, valid_end = forward_split(table["step"].to_numpy(), table["isFraud"].to_numpy())
    folder = _state_dir(settings) / "retrain"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"window-{datetime.now(UTC):%Y%m%dT%H%M%S}.parquet"
    pq.write_table(pa.Table.from_pandas(table, schema=ARROW_SCHEMA, preserve_index=False), path)
    arguments: dict[str, Any] = {
        "source": str(path),
        "rows": len(table),
        "seed": 7,
        "scenario": "baseline",
        "feature_set": "strict",
        "train_end_step": train_end,
        "valid_end_step": valid_end,
        "n_trials": trials,
        "timeout_s": 900.0,
        "families": families,
        "alert_budget": 0.02,
    }
    if kfp_host:
        from fraud.store import ObjectStore, S3Uri

        uri = S3Uri(settings.data_bucket, f"monitoring/retrain/{path.name}")
        ObjectStore.from_settings(settings).upload_file(path, uri)
        from fraud.params import TrainingParams

        package = compile_pipeline(settings, settings.home_dir / "build" / "fraud-training.yaml")
        params = TrainingParams.parse({**arguments, "source": str(uri)})
        run_id = submit(settings, kfp_host, package, params, "fraud-retraining")
        return {"submitted": "kfp", "run_id": run_id, "data": str(uri), "reason": reason}
    from fraud.registry import CHAMPION, connect, version_by_alias

    client = connect(settings)
    before = version_by_alias(client, settings.model_name, CHAMPION)
    champion = None if before is None else str(before.version)
    with err_console.status(f"training on {len(table):,} labelled rows of the window (log: pipeline-runs/)…"):
        outcome = run_local(settings, arguments)
    client.set_model_version_tag(settings.model_name, outcome.version, "retrain_reason", reason[:5000])
    canary = "fraudctl canary start --alias challenger" + (f" --champion-version {champion}" if champion else "")
    return {
        "submitted": "local",
        "version": outcome.version,
        "aliases": outcome.aliases,
        "champion_before": champion,
        "canary": canary,
        "run_id": outcome.run_id,
        "data": str(path),
    }


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
