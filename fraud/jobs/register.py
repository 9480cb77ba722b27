"""Pipeline step 5: log the pyfunc model, register a version, move aliases through the champion gate.

Runs last, so a pipeline that fails anywhere earlier registers nothing. The new version always becomes
``challenger``; it becomes ``champion`` only when there is none, or when it beats the current champion on the
same test block, both scored here on the same raw rows through their own stored feature functions.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from importlib.metadata import version as installed_version
from pathlib import Path

import mlflow
import mlflow.pyfunc
import numpy as np

import fraud
from fraud.artifacts import MONITORING_ARTIFACTS, EvaluationFiles, read_block, read_tuning_summary
from fraud.evaluation.metrics import average_precision
from fraud.features import FeatureSpec
from fraud.pyfunc_model import (
    ARTIFACT_EVALUATION,
    ARTIFACT_NATIVE,
    ARTIFACT_REFERENCE,
    ARTIFACT_SPEC,
    ARTIFACT_THRESHOLDS,
    FraudDetectorModel,
    signature_for,
)
from fraud.registry import (
    CHALLENGER,
    CHAMPION,
    GateDecision,
    aliases_of,
    connect,
    decide_champion,
    ensure_registered_model,
    set_alias,
    version_by_alias,
)
from fraud.settings import Settings

log = logging.getLogger(__name__)

MODEL_REQUIREMENTS = (
    "mlflow",
    "numpy",
    "pandas",
    "pyarrow",
    "scipy",
    "scikit-learn",
    "xgboost-cpu",
    "joblib",
    "pydantic",
)
"""What the pyfunc model imports when loaded elsewhere (its code travels in the model via ``code_paths``)."""


@dataclass(frozen=True)
class Registration:
    name: str
    version: str
    aliases: list[str]
    gate: GateDecision
    run_id: str
    model_uri: str


def _requirements() -> list[str]:
    return [f"{name}=={installed_version(name)}" for name in MODEL_REQUIREMENTS]


def run(
    settings: Settings,
    *,
    model_dir: Path,
    spec_path: Path,
    evaluation_dir: Path,
    test_path: Path,
    run_id: str,
) -> Registration:
    spec = FeatureSpec.from_json(spec_path.read_text())
    files = EvaluationFiles.under(evaluation_dir)
    evaluation = json.loads(files.evaluation.read_text())
    test_report = evaluation["reports"]["test"]
    test = read_block(test_path, spec)
    test_frame = test.raw.select([c for c in test.raw.column_names if c != "isFraud"]).to_pandas()
    client = connect(settings)
    name = settings.model_name
    ensure_registered_model(client, name, "Real-time fraud model for mobile-money transactions (PaySim schema).")
    tuning = read_tuning_summary(model_dir)
    fingerprint = client.get_run(run_id).data.tags.get("data_fingerprint", "")
    with mlflow.start_run(run_id=run_id):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=FraudDetectorModel(),
            artifacts={
                ARTIFACT_NATIVE: str(model_dir),
                ARTIFACT_SPEC: str(spec_path),
                ARTIFACT_THRESHOLDS: str(files.thresholds),
                ARTIFACT_EVALUATION: str(files.evaluation),
                ARTIFACT_REFERENCE: str(files.reference),
            },
            code_paths=[str(Path(fraud.__file__).parent)],
            signature=signature_for(spec),
            input_example=test_frame.head(5),
            pip_requirements=_requirements(),
        )
        for reference_file in (files.reference, files.reference_scores):  # the version's drift reference
            mlflow.log_artifact(str(reference_file), MONITORING_ARTIFACTS)
        version = mlflow.register_model(
            info.model_uri,
            name,
            tags={
                "feature_set": spec.feature_set,
                "feature_spec_version": spec.version,
                "model_family": str(tuning.get("family", "")),
                "data_fingerprint": fingerprint,
                "run_id": run_id,
                "threshold_block": f"{json.loads(files.thresholds.read_text())['block']:.6g}",
                "test_average_precision": f"{test_report['average_precision']:.6f}",
                "test_fraud_rate": f"{test_report['fraud_rate']:.6f}",
            },
        )
        number = str(version.version)
        champion = version_by_alias(client, name, CHAMPION)
        champion_score = None
        if champion is not None:
            champion_model = mlflow.pyfunc.load_model(f"models:/{name}@{CHAMPION}")
            champion_scores = champion_model.predict(test_frame)["fraud_probability"].to_numpy()
            champion_score = float(average_precision(np.asarray(champion_scores, dtype=np.float64), test.labels))
        gate = decide_champion(
            float(test_report["average_precision"]),
            champion_score,
            None if champion is None else str(champion.version),
        )
        set_alias(client, name, CHALLENGER, number)
        if gate.promote:
            set_alias(client, name, CHAMPION, number)
        mlflow.log_metrics(gate.as_metrics())
        mlflow.set_tags({"gate_decision": "promoted" if gate.promote else "kept champion", "gate_reason": gate.reason})
        mlflow.set_tag("registered_version", number)
        client.update_model_version(name, number, description=gate.reason)
    log.info("registered %s v%s; %s", name, number, gate.reason)
    return Registration(name, number, aliases_of(client, name, number), gate, run_id, f"models:/{name}/{number}")
