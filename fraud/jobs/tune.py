"""Pipeline step 3: the Optuna study over the model families; the best model becomes the step's Model artifact."""

from __future__ import annotations

import logging
from pathlib import Path

import mlflow

from fraud.artifacts import read_block, write_tuning_summary
from fraud.features import FeatureSpec
from fraud.modeling import save_native
from fraud.registry import connect
from fraud.settings import Settings
from fraud.tuning import TuneConfig, TuneResult, tune

log = logging.getLogger(__name__)


def run(
    settings: Settings,
    *,
    train_path: Path,
    valid_path: Path,
    spec_path: Path,
    model_dir: Path,
    config: TuneConfig,
    run_id: str | None,
) -> TuneResult:
    spec = FeatureSpec.from_json(spec_path.read_text())
    train = read_block(train_path, spec)
    valid = read_block(valid_path, spec)
    work = model_dir.parent / f"{model_dir.name}-tuning"
    if run_id:
        connect(settings)
    result = tune(
        train.features,
        train.labels,
        valid.features,
        valid.labels,
        spec.names,
        config,
        mlflow_parent_run_id=run_id,
        out_dir=work,
    )
    save_native(result.model, model_dir)
    summary = {
        "family": result.family,
        "params": result.params,
        "validation_average_precision": result.best_value,
        "trials_complete": result.n_complete,
        "trials_pruned": result.n_pruned,
        "trials_failed": result.n_failed,
        "negative_sample_rate": result.negative_sample_rate,
    }
    write_tuning_summary(model_dir, summary)
    log.info("best: %s with validation AP %.4f", result.family, result.best_value)
    if run_id:
        with mlflow.start_run(run_id=run_id):
            mlflow.set_tag("model_family", result.family)
    return result
