"""Pipeline step 4: choose thresholds on validation, measure on test, write the model report.

Its output directory is what registration attaches to the model version: the thresholds, the metrics, the
HTML report and the drift reference sample.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fraud.artifacts import FEATURE_PREFIX, Block, EvaluationFiles, read_block, read_tuning_summary
from fraud.evaluation.metrics import confusion_at, roc_curve_points
from fraud.evaluation.report import build_figures, save_figures, write_model_report
from fraud.evaluation.scorecard import EvaluationReport, evaluate_block
from fraud.evaluation.thresholds import Thresholds, choose_thresholds
from fraud.features import FeatureSpec
from fraud.modeling import NativeModel, load_native
from fraud.registry import connect
from fraud.settings import Settings

log = logging.getLogger(__name__)

REFERENCE_ROWS = 20_000
REFERENCE_SCORES_ROWS = 1_000_000
IMPORTANCE_ROWS = 20_000


@dataclass(frozen=True)
class EvaluationOutcome:
    thresholds: Thresholds
    reports: dict[str, EvaluationReport]
    importance: dict[str, float]
    roc: tuple[list[float], list[float], list[float]]
    confusion: list[list[int]]
    report_path: Path


def feature_importance(
    model: NativeModel, features: np.ndarray, names: tuple[str, ...], seed: int = 0
) -> dict[str, float]:
    """Mean absolute contribution (log-odds) per feature on a sample: what drives the scores on this block."""
    rng = np.random.default_rng(seed)
    rows = (
        features
        if len(features) <= IMPORTANCE_ROWS
        else features[rng.choice(len(features), IMPORTANCE_ROWS, replace=False)]
    )
    contributions = model.contributions(rows)[:, : len(names)]
    values = np.abs(contributions).mean(axis=0)
    return {name: float(v) for name, v in sorted(zip(names, values, strict=True), key=lambda kv: -kv[1])}


def reference_sample(
    block: Block, scores: np.ndarray, spec: FeatureSpec, thresholds: Thresholds, seed: int = 0
) -> pa.Table:
    """Raw rows, features, scores and decisions of a random validation sample: what drift is measured against."""
    rng = np.random.default_rng(seed)
    take = np.sort(rng.choice(block.rows, min(REFERENCE_ROWS, block.rows), replace=False))
    table = block.raw.take(pa.array(take))
    for index, name in enumerate(spec.names):
        table = table.append_column(FEATURE_PREFIX + name, pa.array(block.features[take, index]))
    table = table.append_column("score", pa.array(scores[take]))
    return table.append_column("decision", pa.array(thresholds.decide(scores[take])))


def reference_scores(block: Block, scores: np.ndarray, thresholds: Thresholds, seed: int = 0) -> pa.Table:
    """Step, type, amount, score, decision and label of every validation row (a random subset above
    `REFERENCE_SCORES_ROWS`): block rates of 0.04 %, the score's top 0.1 % and label checks need more rows than
    the sample holds."""
    take = np.arange(block.rows)
    if block.rows > REFERENCE_SCORES_ROWS:
        take = np.sort(np.random.default_rng(seed).choice(block.rows, REFERENCE_SCORES_ROWS, replace=False))
    table = block.raw.select(["step", "type", "amount", "isFraud"]).take(pa.array(take))
    table = table.append_column("score", pa.array(scores[take]))
    return table.append_column("decision", pa.array(thresholds.decide(scores[take])))


def run(
    settings: Settings,
    *,
    model_dir: Path,
    spec_path: Path,
    valid_path: Path,
    test_path: Path,
    alert_budget: float,
    review_cost: float,
    review_share: float,
    output_dir: Path,
    report_path: Path,
    run_id: str | None,
) -> EvaluationOutcome:
    spec = FeatureSpec.from_json(spec_path.read_text())
    model = load_native(model_dir)
    valid = read_block(valid_path, spec)
    test = read_block(test_path, spec)
    valid_scores = model.predict_proba(valid.features)
    test_scores = model.predict_proba(test.features)
    thresholds = choose_thresholds(
        valid_scores,
        valid.labels,
        valid.amounts,
        alert_budget=alert_budget,
        review_cost=review_cost,
        review_share=review_share,
    )
    reports = {
        "validation": evaluate_block(valid_scores, valid.labels, valid.amounts, thresholds, block="validation"),
        "test": evaluate_block(test_scores, test.labels, test.amounts, thresholds, block="test"),
    }
    importance = feature_importance(model, test.features, spec.names)
    fpr, tpr, cuts = roc_curve_points(test_scores, test.labels, max_points=200)
    confusion = confusion_at(test_scores, test.labels, thresholds.block).matrix()
    files = EvaluationFiles.under(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    files.thresholds.write_text(json.dumps(thresholds.to_dict(), indent=2))
    evaluation = {
        "feature_set": spec.feature_set,
        "notes": spec.notes,
        "reports": {name: report.to_dict() for name, report in reports.items()},
        "feature_importance": importance,
    }
    files.evaluation.write_text(json.dumps(evaluation, indent=2))
    pq.write_table(reference_sample(valid, valid_scores, spec, thresholds), files.reference)
    pq.write_table(reference_scores(valid, valid_scores, thresholds), files.reference_scores)
    tuning = read_tuning_summary(model_dir)
    scores_by_block = {"validation": valid_scores, "test": test_scores}
    labels_by_block = {"validation": valid.labels, "test": test.labels}
    amounts_by_block = {"validation": valid.amounts, "test": test.amounts}
    figures = build_figures(
        scores_by_block=scores_by_block,
        labels_by_block=labels_by_block,
        amounts_by_block=amounts_by_block,
        thresholds=thresholds,
        feature_importance=importance,
    )
    figure_paths = save_figures(files.figures, figures)
    written = write_model_report(
        files.report,
        title=f"fraud-detector · {tuning.get('family', 'model')} · {spec.feature_set} features",
        reports=reports,
        scores_by_block=scores_by_block,
        labels_by_block=labels_by_block,
        amounts_by_block=amounts_by_block,
        thresholds=thresholds,
        feature_importance=importance,
        notes=spec.notes,
        extra_tables={
            "tuning": {k: v for k, v in tuning.items() if k != "params"},
            "parameters": tuning.get("params", {}),
        },
        figures=figures,
    )
    report_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(written, report_path)
    test_report = reports["test"]
    log.info(
        "test: AP %.4f at fraud rate %.4f, ROC AUC %.4f, recall %.3f at threshold %.4g",
        test_report.average_precision,
        test_report.fraud_rate,
        test_report.roc_auc,
        test_report.recall_at_threshold,
        thresholds.block,
    )
    if run_id:
        connect(settings)
        with mlflow.start_run(run_id=run_id):
            for name, report in reports.items():
                mlflow.log_metrics(report.metrics(prefix=f"{name}_"))
            mlflow.log_params({"alert_budget": alert_budget, "review_cost": review_cost, "review_share": review_share})
            mlflow.log_dict(thresholds.to_dict(), "evaluation/thresholds.json")
            mlflow.log_dict(evaluation, "evaluation/evaluation.json")
            mlflow.log_artifact(str(written), "evaluation")
            for figure in figure_paths:
                mlflow.log_artifact(str(figure), "evaluation/figures")
    return EvaluationOutcome(
        thresholds, reports, importance, (list(fpr), list(tpr), list(cuts)), confusion, report_path
    )
