"""The whole training pipeline through kfp.local against the real local stack (S3 + MLflow servers)."""

from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from fraud.errors import PipelineError
from fraud.settings import Settings
from fraud.store import ObjectStore, S3Uri
from pipelines.runner import PipelineOutcome, StepEvent, run_local
from pipelines.training import STEPS
from samples import PAYSIM_STEPS1TO9

pytestmark = [pytest.mark.stack, pytest.mark.slow]

SAMPLE = PAYSIM_STEPS1TO9
SMALL = {
    "source": "generator",
    "rows": 20_000,
    "seed": 11,
    # a longer validation block than the default, so a few thousand rows still hold fraud in every block
    "train_end_step": 240,
    "valid_end_step": 408,
    "n_trials": 3,
    "families": "xgboost,logreg",
    "timeout_s": 300.0,
}


@pytest.fixture(scope="module")
def settings(stack: Settings) -> Settings:
    """This module's own registered model and experiment: other modules register versions in the same stack."""
    return stack.model_copy(update={"model_name": "pipeline-check", "experiment_name": "pipeline-check"})


@pytest.fixture(scope="module")
def first_run(settings: Settings) -> tuple[PipelineOutcome, list[StepEvent]]:
    events: list[StepEvent] = []
    outcome = run_local(settings, {**SMALL, "feature_set": "decision_time"}, on_event=events.append)
    return outcome, events


def test_pipeline_registers_version_1_as_champion(first_run: tuple[PipelineOutcome, list[StepEvent]]) -> None:
    outcome, events = first_run
    assert [e.step for e in events if e.state == "succeeded"] == list(STEPS)
    trials = [e.detail for e in events if e.state == "progress"]
    assert len(trials) == SMALL["n_trials"] and all(e.step == "tune" for e in events if e.state == "progress")
    assert all(detail.startswith(f"trial {i} ") for i, detail in enumerate(trials)), trials
    assert outcome.version == "1"
    assert outcome.aliases == ["challenger", "champion"]
    assert outcome.promoted
    assert outcome.feature_set == "decision_time"
    assert outcome.notes and "artefact" in outcome.notes[0]
    assert outcome.log_path.is_file()
    for key in ("test_average_precision", "test_roc_auc", "test_fraud_rate", "test_expected_cost", "train_rows"):
        assert key in outcome.metrics, key
    assert 0.0 < outcome.metrics["test_fraud_rate"] < 0.1


def test_version_carries_its_tags_artifacts_and_trial_runs(
    settings: Settings, first_run: tuple[PipelineOutcome, list[StepEvent]]
) -> None:
    outcome, _ = first_run
    client = MlflowClient(settings.tracking_uri)
    version = client.get_model_version(settings.model_name, outcome.version)
    for tag in ("feature_set", "data_fingerprint", "model_family", "threshold_block", "test_average_precision"):
        assert version.tags.get(tag), tag
    run = client.get_run(outcome.run_id)
    assert run.data.tags["data_fingerprint"] == version.tags["data_fingerprint"]
    children = client.search_runs(
        [run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{outcome.run_id}'"
    )
    assert len(children) == SMALL["n_trials"], "every Optuna trial is a child run"
    artifacts = {a.path for a in client.list_artifacts(outcome.run_id, "evaluation")}
    assert "evaluation/report.html" in artifacts
    # the data and the model artifacts are objects in the real S3 store
    store = ObjectStore.from_settings(settings)
    assert any(uri.key.endswith("manifest.json") for uri in store.list(S3Uri(settings.data_bucket, "raw/paysim/")))
    assert list(store.list(S3Uri(settings.artifact_bucket, "")))


def test_registered_model_scores_genuine_rows_through_pyfunc(
    settings: Settings, first_run: tuple[PipelineOutcome, list[StepEvent]]
) -> None:
    _ = first_run
    model = mlflow.pyfunc.load_model(f"models:/{settings.model_name}@champion")
    genuine = pd.read_csv(SAMPLE, nrows=500)
    answer = model.predict(genuine.drop(columns=["isFraud", "isFlaggedFraud", "newbalanceOrig", "newbalanceDest"]))
    assert list(answer.columns) == ["fraud_probability", "decision"]
    assert len(answer) == 500
    assert answer["fraud_probability"].between(0, 1).all()
    assert set(answer["decision"]) <= {"allow", "review", "block"}


def test_a_worse_model_does_not_take_champion(
    settings: Settings, first_run: tuple[PipelineOutcome, list[StepEvent]]
) -> None:
    # given v1 (decision_time: near perfect on PaySim's balance artefact) as champion
    first, _ = first_run
    # when the same data trains a strict-feature model, which cannot match it
    second = run_local(settings, {**SMALL, "feature_set": "strict", "families": "logreg", "n_trials": 1})
    # then it is registered as challenger only, and the gate's comparison is logged
    assert second.version == "2"
    assert second.aliases == ["challenger"]
    assert not second.promoted
    assert "keeps the alias" in second.gate_reason
    client = MlflowClient(settings.tracking_uri)
    assert client.get_model_version_by_alias(settings.model_name, "champion").version == first.version
    metrics = client.get_run(second.run_id).data.metrics
    assert metrics["gate_champion_test_average_precision"] > metrics["gate_challenger_test_average_precision"]


def test_a_failed_run_names_the_step_and_registers_nothing(settings: Settings, tmp_path: Path) -> None:
    client = MlflowClient(settings.tracking_uri)
    before = len(client.search_model_versions(f"name = '{settings.model_name}'"))
    with pytest.raises(PipelineError, match=r"step 'ingest' failed: SourceError: no such file") as caught:
        run_local(settings, {**SMALL, "source": str(tmp_path / "missing.csv")})
    assert "full log:" in str(caught.value)
    assert len(client.search_model_versions(f"name = '{settings.model_name}'")) == before
