"""The monitor's retraining submission: the training pipeline on a window, locally or on Kubeflow Pipelines.

Here and not in `monitoring`: the monitoring package may not import the pipeline (import-linter), so the
monitor (`monitoring.retrain.check`) takes the `Submit` callable that `submitter` builds, and the CLI only
passes it along.

Locally it is the same run `fraudctl pipeline run` does (`pipelines.runner.run_local`), on the window's labelled
rows written as a dataset file; the new version gets the ``challenger`` alias from the register step, and a
``retrain_reason`` tag here. The champion serving *before* the run is recorded: the pipeline's offline gate may
already move the champion alias to the new version, and the canary must compare it with what served traffic.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from fraud.settings import Settings

if TYPE_CHECKING:
    from monitoring.retrain import Submit, TrainingWindow
    from pipelines.runner import EventFn

RETRAIN_TRIALS: Final = 8
RETRAIN_FAMILIES: Final = "xgboost,hist_gb,logreg"
RETRAIN_SEED: Final = 7
RETRAIN_TIMEOUT_S: Final = 900.0
RETRAIN_ALERT_BUDGET: Final = 0.02
REASON_TAG: Final = "retrain_reason"
MLFLOW_TAG_LIMIT: Final = 5000
"""MLflow refuses longer tag values."""


def submitter(
    settings: Settings,
    data_dir: Path,
    *,
    kfp_host: str | None = None,
    trials: int = RETRAIN_TRIALS,
    families: str = RETRAIN_FAMILIES,
    on_event: EventFn | None = None,
) -> Submit:
    """The callable the monitor submits retraining with: a local run, or a KFP run when `kfp_host` is given.

    Args:
        data_dir: where each window's training file is written (and kept, for the record).
        on_event: live progress of a local run's steps (`pipelines.runner.StepEvent`).
    """

    def submit(window: TrainingWindow, reason: str) -> dict[str, Any]:
        path = write_window(window, data_dir)
        arguments = training_arguments(window, str(path), trials, families)
        if kfp_host:
            return submit_kfp(settings, kfp_host, path, arguments, reason)
        return run_on_window(settings, arguments, reason, on_event)

    return submit


def write_window(window: TrainingWindow, data_dir: Path) -> Path:
    """The window's labelled rows as a Parquet file in the dataset's schema (what the ingest step reads)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from fraud.schema import ARROW_SCHEMA

    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / f"window-{datetime.now(UTC):%Y%m%dT%H%M%S%f}.parquet"
    pq.write_table(pa.Table.from_pandas(window.table, schema=ARROW_SCHEMA, preserve_index=False), path)
    return path


def training_arguments(window: TrainingWindow, source: str, trials: int, families: str) -> dict[str, Any]:
    """The pipeline's parameters for a window: its rows as the source, split where `forward_split` put it.

    ``rows`` and ``scenario`` are left out: they only shape generated data (and ``rows`` has a generator's
    minimum that a small window's file need not meet).
    """
    return {
        "source": source,
        "seed": RETRAIN_SEED,
        "feature_set": "strict",
        "train_end_step": window.train_end_step,
        "valid_end_step": window.valid_end_step,
        "n_trials": trials,
        "timeout_s": RETRAIN_TIMEOUT_S,
        "families": families,
        "alert_budget": RETRAIN_ALERT_BUDGET,
    }


def run_on_window(
    settings: Settings, arguments: dict[str, Any], reason: str, on_event: EventFn | None = None
) -> dict[str, Any]:
    """Run the training pipeline here (`run_local`) and tag the new version with the trigger's reason.

    Raises:
        PipelineError: a step failed (named, with the log's path).
    """
    from fraud.registry import CHAMPION, connect, version_by_alias
    from pipelines.runner import run_local

    client = connect(settings)
    before = version_by_alias(client, settings.model_name, CHAMPION)
    champion = None if before is None else str(before.version)
    outcome = run_local(settings, arguments, on_event=on_event)
    client.set_model_version_tag(settings.model_name, outcome.version, REASON_TAG, reason[:MLFLOW_TAG_LIMIT])
    canary = "fraudctl canary start --alias challenger" + (f" --champion-version {champion}" if champion else "")
    return {
        "submitted": "local",
        "version": outcome.version,
        "aliases": outcome.aliases,
        "champion_before": champion,
        "canary": canary,
        "run_id": outcome.run_id,
        "data": arguments["source"],
    }


def submit_kfp(settings: Settings, host: str, path: Path, arguments: dict[str, Any], reason: str) -> dict[str, Any]:
    """Upload the window's file to the data bucket and start a KFP run on it (needs a reachable cluster)."""
    from fraud.params import TrainingParams
    from fraud.store import ObjectStore, S3Uri
    from pipelines.runner import compile_pipeline, submit

    uri = S3Uri(settings.data_bucket, f"monitoring/retrain/{path.name}")
    ObjectStore.from_settings(settings).upload_file(path, uri)
    package = compile_pipeline(settings, settings.home_dir / "build" / "fraud-training.yaml")
    params = TrainingParams.parse({**arguments, "source": str(uri)})
    run_id = submit(settings, host, package, params, "fraud-retraining")
    return {"submitted": "kfp", "run_id": run_id, "data": str(uri), "reason": reason}
