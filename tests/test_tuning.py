"""The Optuna study of the tune step, with the real libraries, on features of the genuine PaySim sample."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from fraud.data.adapters import get_adapter
from fraud.data.readers import validated_batches
from fraud.errors import PipelineError
from fraud.features import build_features, fit_spec
from fraud.modeling import load_native, save_native
from fraud.tuning import (
    AP_METRIC,
    STATE_TAG,
    TrialSummary,
    TuneConfig,
    TuneResult,
    TuningError,
    sample_negatives,
    tune,
)
from samples import PAYSIM_STEPS1TO9

SAMPLE = PAYSIM_STEPS1TO9


class Blocks:
    """Forward split of the sample: steps 1–7 train (14,001 rows, 78 frauds), steps 8–9 validate (16 frauds)."""

    def __init__(self) -> None:
        table = pa.Table.from_batches(list(validated_batches(SAMPLE, get_adapter("paysim"))))
        train = table.filter(pc.less_equal(table["step"], 7))
        valid = table.filter(pc.greater(table["step"], 7))
        spec = fit_spec(train, "decision_time")
        self.names = spec.names
        self.X = build_features(train, spec)
        self.y = train["isFraud"].to_numpy()
        self.X_valid = build_features(valid, spec)
        self.y_valid = valid["isFraud"].to_numpy()


@pytest.fixture(scope="module")
def blocks() -> Blocks:
    return Blocks()


def quick(**overrides: Any) -> TuneConfig:
    """Small, fast studies: one thread, short boosting."""
    settings: dict[str, Any] = {
        "n_trials": 5,
        "seed": 7,
        "n_jobs": 1,
        "max_rounds": 100,
        "report_every": 10,
        "figures": False,
    }
    settings.update(overrides)
    return TuneConfig(**settings)


def run(blocks: Blocks, config: TuneConfig, out: Path, *, parent: str | None = None) -> TuneResult:
    return tune(
        blocks.X,
        blocks.y,
        blocks.X_valid,
        blocks.y_valid,
        blocks.names,
        config,
        out_dir=out,
        mlflow_parent_run_id=parent,
    )


def test_same_seed_gives_same_study(blocks: Blocks, tmp_path: Path) -> None:
    seen: list[TrialSummary] = []
    first = tune(
        blocks.X,
        blocks.y,
        blocks.X_valid,
        blocks.y_valid,
        blocks.names,
        quick(figures=True),
        out_dir=tmp_path / "a",
        on_trial=seen.append,
    )
    second = tune(blocks.X, blocks.y, blocks.X_valid, blocks.y_valid, blocks.names, quick(), out_dir=tmp_path / "b")

    assert [t.number for t in seen] == list(range(5))
    assert first.family == second.family
    assert first.params == second.params
    assert first.best_value == second.best_value
    assert [(h.family, h.state, h.value) for h in first.history] == [
        (h.family, h.state, h.value) for h in second.history
    ]
    np.testing.assert_array_equal(first.model.predict_proba(blocks.X_valid), second.model.predict_proba(blocks.X_valid))
    assert first.n_complete + first.n_pruned + first.n_failed == 5
    assert {h.family for h in first.history} <= {"xgboost", "hist_gb", "logreg"}
    # the value is the validation AP of the returned model itself
    from sklearn.metrics import average_precision_score

    assert first.best_value == pytest.approx(
        average_precision_score(blocks.y_valid, first.model.predict_logit(blocks.X_valid))
    )
    assert not first.refitted
    assert first.negative_sample_rate == 1.0
    assert [p.name for p in first.figures] == [
        "optimization_history.png",
        "intermediate_values.png",
        "param_importances.png",
    ]
    assert all(p.stat().st_size > 1000 for p in first.figures)


def test_pruner_stops_hopeless_trials(blocks: Blocks, tmp_path: Path) -> None:
    result = run(blocks, quick(n_trials=14, families=("xgboost",), seed=1, max_rounds=300), tmp_path)
    assert result.n_pruned >= 2
    pruned = [h for h in result.history if h.state == "PRUNED"]
    for trial in pruned:
        assert trial.stopped == "pruned"
        last_round = trial.steps[-1][0]
        assert last_round >= 20  # never at the first report: the warm-up is 2 reports
        assert last_round < trial.params["n_estimators"]  # stopped before its planned rounds


def test_families_restriction_is_respected(blocks: Blocks, tmp_path: Path) -> None:
    result = run(blocks, quick(n_trials=5, families=("logreg", "hist_gb")), tmp_path)
    assert {h.family for h in result.history} <= {"logreg", "hist_gb"}
    assert result.family in {"logreg", "hist_gb"}


def test_timeout_is_respected(blocks: Blocks, tmp_path: Path) -> None:
    started = time.monotonic()
    result = run(blocks, quick(n_trials=None, timeout=2.5, families=("xgboost", "logreg")), tmp_path)
    elapsed = time.monotonic() - started
    assert result.n_complete >= 1
    # the deadline also stops the trial in flight; what remains is bookkeeping
    assert elapsed < 2.5 + 3.0


def test_timeout_too_short_for_any_trial_raises(blocks: Blocks, tmp_path: Path) -> None:
    with pytest.raises(TuningError, match=r"no tuning trial completed within the 0.01 s timeout"):
        run(blocks, quick(n_trials=None, timeout=0.01, families=("hist_gb",)), tmp_path)


def test_training_block_without_fraud_raises(blocks: Blocks, tmp_path: Path) -> None:
    with pytest.raises(TuningError, match="the training block has no fraud: widen the split or use more rows"):
        tune(blocks.X, np.zeros_like(blocks.y), blocks.X_valid, blocks.y_valid, blocks.names, quick(), out_dir=tmp_path)
    with pytest.raises(TuningError, match="the validation block has no fraud"):
        tune(blocks.X, blocks.y, blocks.X_valid, np.zeros_like(blocks.y_valid), blocks.names, quick(), out_dir=tmp_path)
    assert issubclass(TuningError, PipelineError)


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(TuningError, match="families"):
        TuneConfig(families=("random_forest",))
    with pytest.raises(TuningError, match="n_trials or timeout"):
        TuneConfig(n_trials=None, timeout=None)


def test_negative_sampling_keeps_fraud_and_reweights(blocks: Blocks, tmp_path: Path) -> None:
    sampled = sample_negatives(blocks.X, blocks.y, rate=None, max_rows=4000, seed=0)
    n_pos = int(blocks.y.sum())
    assert sampled.X.shape[0] <= 4000
    assert int(sampled.y.sum()) == n_pos
    assert 0 < sampled.rate < 1
    # weighted class totals are those of the full block
    assert sampled.weight[sampled.y == 0].sum() == pytest.approx(float((blocks.y == 0).sum()))
    assert np.all(sampled.weight[sampled.y == 1] == 1.0)

    result = run(blocks, quick(n_trials=3, max_tuning_rows=4000, families=("logreg",)), tmp_path)
    assert result.negative_sample_rate == pytest.approx(sampled.rate)
    assert result.tuning_rows == sampled.X.shape[0]


def test_shared_journal_storage_continues_the_study_and_refits_a_foreign_best(blocks: Blocks, tmp_path: Path) -> None:
    journal = str(tmp_path / "study.journal")
    first = run(blocks, quick(n_trials=3, families=("hist_gb",), storage=journal, study_name="shared"), tmp_path)
    # a second process joins with no time to finish a trial of its own: the study's best comes from the first,
    # so it refits those parameters, to the very same model
    second = run(
        blocks,
        quick(n_trials=None, timeout=0.01, families=("hist_gb",), storage=journal, study_name="shared", worker=1),
        tmp_path,
    )
    assert second.best_trial == first.best_trial
    assert second.refitted
    assert second.params == first.params
    np.testing.assert_array_equal(second.model.predict_proba(blocks.X_valid), first.model.predict_proba(blocks.X_valid))
    save_native(second.model, tmp_path / "best")
    np.testing.assert_array_equal(
        load_native(tmp_path / "best").predict_proba(blocks.X_valid), second.model.predict_proba(blocks.X_valid)
    )
    with pytest.raises(TuningError, match="searches the families hist_gb; this call asks for logreg"):
        run(blocks, quick(n_trials=1, families=("logreg",), storage=journal, study_name="shared"), tmp_path)


def test_parallel_workers_share_one_study_without_replaying_trials(blocks: Blocks, tmp_path: Path) -> None:
    journal = str(tmp_path / "study.journal")
    for worker in (0, 1):
        run(blocks, quick(n_trials=2, families=("logreg",), storage=journal, worker=worker), tmp_path)
    result = run(blocks, quick(n_trials=1, families=("logreg",), storage=journal, worker=2), tmp_path)
    assert [h.number for h in result.history] == [0, 1, 2, 3, 4]
    proposals = [h.params["C"] for h in result.history]
    assert len(set(proposals)) == 5


def test_sqlite_storage_url(blocks: Blocks, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/optuna.db"
    result = run(blocks, quick(n_trials=2, families=("logreg",), storage=url, study_name="s"), tmp_path)
    import optuna

    assert len(optuna.load_study(study_name="s", storage=url).trials) == 2
    assert result.n_complete == 2


@pytest.fixture
def tracking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A throw-away SQLite tracking store; the previous tracking URI (global and environment) is restored."""
    import mlflow
    from mlflow.tracking._tracking_service import utils as tracking_utils

    previous = tracking_utils._tracking_uri
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    try:
        yield uri
    finally:
        tracking_utils.set_tracking_uri(previous)  # type: ignore[arg-type]  # None restores "unset"


def test_trials_are_mlflow_child_runs_and_figures_are_logged(blocks: Blocks, tmp_path: Path, tracking: str) -> None:
    from mlflow import MlflowClient

    client = MlflowClient()
    experiment = client.create_experiment("tune-test", artifact_location=(tmp_path / "artifacts").as_uri())
    parent = client.create_run(experiment, run_name="pipeline").info.run_id

    result = run(
        blocks, quick(n_trials=5, families=("xgboost", "logreg"), figures=True), tmp_path / "out", parent=parent
    )
    client.set_terminated(parent)

    children = client.search_runs([experiment], filter_string=f"tags.mlflow.parentRunId = '{parent}'")
    assert len(children) == 5
    by_trial = {int(run.data.tags["optuna.trial_number"]): run for run in children}
    for summary in result.history:
        child = by_trial[summary.number]
        assert summary.mlflow_run_id == child.info.run_id
        assert child.data.tags[STATE_TAG] == summary.state
        assert child.data.params["family"] == summary.family
        assert child.data.metrics[AP_METRIC] == pytest.approx(summary.value)
        assert child.data.metrics["duration_s"] > 0
        assert child.info.status == ("FINISHED" if summary.state == "COMPLETE" else "KILLED")
        if summary.family == "xgboost":
            assert "max_depth" in child.data.params

    summary_run = client.get_run(parent)
    assert summary_run.data.params["tune.best_family"] == result.family
    assert summary_run.data.metrics[f"tune.best_{AP_METRIC}"] == pytest.approx(result.best_value)
    assert summary_run.data.metrics["tune.n_complete"] == result.n_complete
    assert summary_run.data.metrics["tune.n_pruned"] == result.n_pruned
    logged = {Path(a.path).name for a in client.list_artifacts(parent, "tuning")}
    assert {"optimization_history.png", "intermediate_values.png", "param_importances.png"} <= logged
