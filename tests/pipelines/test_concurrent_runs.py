"""Two pipeline runs at once against the same stack each report their own results, with the settings they got.

Each run is its own process (as two users' `fraudctl pipeline run` would be), both on small data, both registering
into the same model of a non-default name and experiment: the results a run reports must be those of its own
MLflow run and model version, and every step must have used the settings given to the runner (the steps would
otherwise log into the default experiment and register the default model).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from fraud.settings import Settings

pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.timeout(1800)]

MODEL = "fraud-concurrent-check"
EXPERIMENT = "concurrent-check"
SMALL: dict[str, Any] = {
    "source": "generator",
    "rows": 20_000,
    "seed": 11,
    "train_end_step": 240,
    "valid_end_step": 408,
    "n_trials": 1,
    "families": "logreg",
    "timeout_s": 300.0,
}
DRIVER = """
import json, sys
from fraud.settings import load_settings
from pipelines.runner import run_local

settings = load_settings(model_name=sys.argv[1], experiment_name=sys.argv[2])
outcome = run_local(settings, json.loads(sys.argv[3]))
print(json.dumps({"run_id": outcome.run_id, "version": outcome.version, "metrics": outcome.metrics}))
"""


def _start(params: dict[str, Any], home: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", DRIVER, MODEL, EXPERIMENT, json.dumps(params)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=home,
    )


def test_two_runs_at_once_report_their_own_results(stack: Settings, tmp_path: Path) -> None:
    feature_sets = ("decision_time", "strict")
    runs = [_start({**SMALL, "feature_set": feature_set}, tmp_path) for feature_set in feature_sets]
    answers = []
    try:
        for run in runs:
            out, err = run.communicate(timeout=1500)
            assert run.returncode == 0, err[-3000:]
            answers.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for run in runs:
            if run.poll() is None:
                run.kill()
                run.wait()
    assert answers[0]["run_id"] != answers[1]["run_id"]
    assert {a["version"] for a in answers} == {"1", "2"}
    client = MlflowClient(stack.tracking_uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None, "the steps logged into the experiment given to the runner"
    for feature_set, answer in zip(feature_sets, answers, strict=True):
        recorded = client.get_run(answer["run_id"])
        assert recorded.info.experiment_id == experiment.experiment_id
        assert recorded.data.params["feature_set"] == feature_set  # the run this process started, not the other
        assert answer["metrics"] == recorded.data.metrics
        version = client.get_model_version(MODEL, answer["version"])
        assert version.tags["run_id"] == answer["run_id"]
