"""The registered model as an MLflow pyfunc: raw PaySim transactions in, probability and decision out.

Any MLflow-compatible server (`mlflow models serve`, MLServer's MLflow runtime, KServe's MLflow support) can
serve a version as it is, because the feature function travels inside the model (``code_paths``) and is the
same one the pipeline trained with. Our own KServe predictor skips this wrapper on its fast path and reads the
same artifacts directly (`ARTIFACT_*` names below).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.pyfunc.model import PythonModel
from mlflow.types.schema import ColSpec, Schema

from fraud.contracts import PAYSIM, FieldKind
from fraud.evaluation.thresholds import Thresholds
from fraud.features import FeatureSpec, build_features
from fraud.modeling import NativeModel, load_native

ARTIFACT_NATIVE = "native"
ARTIFACT_SPEC = "feature_spec"
ARTIFACT_THRESHOLDS = "thresholds"
ARTIFACT_EVALUATION = "evaluation"
ARTIFACT_REFERENCE = "reference"

OUTPUT_COLUMNS = ("fraud_probability", "decision")
_MLFLOW_TYPES: dict[FieldKind, str] = {
    "integer": "long",
    "number": "double",
    "category": "string",
    "identifier": "string",
}
"""The MLflow column type of each contract kind."""


def signature_for(spec: FeatureSpec) -> ModelSignature:
    """The contract's decision-time fields in; those the feature set does not read are optional (a pyfunc has no
    use for account ids, so unlike our API it does not demand them)."""
    inputs = Schema(
        [
            ColSpec(_MLFLOW_TYPES[field.kind], field.name, required=field.name in spec.inputs)
            for field in PAYSIM.decision_time_fields
        ]
    )
    outputs = Schema([ColSpec("double", "fraud_probability"), ColSpec("string", "decision")])
    return ModelSignature(inputs=inputs, outputs=outputs)


class FraudDetectorModel(PythonModel):
    """Loads the native model, feature spec and thresholds stored with the version."""

    native: NativeModel
    spec: FeatureSpec
    thresholds: Thresholds

    def load_context(self, context: Any) -> None:
        artifacts: dict[str, str] = context.artifacts
        self.native = load_native(Path(artifacts[ARTIFACT_NATIVE]))
        self.spec = FeatureSpec.from_json(Path(artifacts[ARTIFACT_SPEC]).read_text())
        self.thresholds = Thresholds.from_dict(json.loads(Path(artifacts[ARTIFACT_THRESHOLDS]).read_text()))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        del context, params
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        columns = {name: frame[name].to_numpy() for name in self.spec.inputs if name in frame}
        features = build_features(columns, self.spec)
        probability = np.asarray(self.native.predict_proba(features), dtype=np.float64)
        return pd.DataFrame({"fraud_probability": probability, "decision": self.thresholds.decide(probability)})
