"""Where monitoring results are kept: the object store (for people and tools) and MLflow (beside the models).

Daily reports go to ``s3://<data bucket>/monitoring/reports/day=YYYY-MM-DD/report.{html,json}`` and to a run
named ``daily-report-YYYY-MM-DD`` of the ``fraud-monitoring`` experiment (its headline numbers as metrics). Drift
checks (`fraudctl monitor drift --publish`, what the cluster's drift CronJob runs) go to
``s3://<data bucket>/monitoring/drift/day=YYYY-MM-DD/HHMMSSZ/drift.json`` with their HTML pages beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from fraud.settings import Settings
from fraud.store import ObjectStore, S3Uri
from monitoring.daily_report import REPORT_EXPERIMENT, DailyReport

REPORT_PREFIX: Final = "monitoring/reports"
DRIFT_PREFIX: Final = "monitoring/drift"


def report_prefix(settings: Settings, report: DailyReport) -> S3Uri:
    return S3Uri(settings.data_bucket, f"{REPORT_PREFIX}/day={report.day.isoformat()}/")


def _metrics(report: DailyReport) -> dict[str, float]:
    data = report.data
    rows = max(int(data["volumes"]["rows"]), 1)
    metrics = {
        "rows": float(data["volumes"]["rows"]),
        "block_rate": data["decisions"]["block"] / rows,
        "review_rate": data["decisions"]["review"] / rows,
        "pending_labels": float(data.get("pending_labels", 0)),
    }
    if "drift" in data:
        metrics["drift"] = float(bool(data["drift"]["drift"]))
    for key in ("caught", "missed", "false_alerts", "frauds"):
        if "outcomes" in data:
            metrics[f"frauds_{key}" if key != "frauds" else "frauds"] = float(data["outcomes"][key])
    if "latency_ms" in data:
        metrics["latency_p99_ms"] = float(data["latency_ms"]["p99"])
    return metrics


def publish_report(
    settings: Settings, report: DailyReport, html: Path, data: Path, *, store: ObjectStore | None = None
) -> dict[str, str]:
    """Upload the report to the object store and log it on an MLflow run; returns where each copy is."""
    import mlflow

    from fraud.registry import connect

    store = store or ObjectStore.from_settings(settings)
    store.ensure_bucket(settings.data_bucket)
    prefix = report_prefix(settings, report)
    store.upload_file(html, prefix.child("report.html"))
    store.upload_file(data, prefix.child("report.json"))
    connect(settings)
    experiment = mlflow.set_experiment(REPORT_EXPERIMENT)
    with mlflow.start_run(
        experiment_id=experiment.experiment_id, run_name=f"daily-report-{report.day.isoformat()}"
    ) as run:
        mlflow.log_artifact(str(html), "daily-report")
        mlflow.log_artifact(str(data), "daily-report")
        mlflow.log_metrics(_metrics(report))
        mlflow.set_tags({"day": report.day.isoformat(), "kind": "daily-report"})
    return {"s3": str(prefix), "mlflow_run": run.info.run_id}


def drift_prefix(settings: Settings, checked_at: datetime) -> S3Uri:
    """Where one drift check is kept: by UTC day, then by the check's time (checks sort in time order)."""
    moment = checked_at.astimezone(UTC)
    return S3Uri(settings.data_bucket, f"{DRIFT_PREFIX}/day={moment:%Y-%m-%d}/{moment:%H%M%S}Z/")


def publish_drift(
    settings: Settings,
    verdict: dict[str, Any],
    pages: Sequence[Path],
    checked_at: datetime,
    *,
    store: ObjectStore | None = None,
) -> S3Uri:
    """Upload one drift check: its HTML pages, then its verdict as drift.json (last, so a listed drift.json means
    the check is complete). Returns the check's prefix."""
    store = store or ObjectStore.from_settings(settings)
    store.ensure_bucket(settings.data_bucket)
    prefix = drift_prefix(settings, checked_at)
    for page in pages:
        store.upload_file(page, prefix.child(page.name))
    store.put_json(prefix.child("drift.json"), verdict)
    return prefix
