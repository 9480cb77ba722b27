"""A model version's drift reference: what its traffic looked like on held-out data, as the registry stores it.

The evaluate step writes two files and registration logs them on the version's MLflow run under
``monitoring/`` (`fraud.jobs.evaluate.reference_sample`, `reference_scores`):

- ``reference.parquet``: up to 20,000 random validation rows with their decision-time fields, features, score
  and decision, for per-feature drift;
- ``reference_scores.parquet``: step, type, amount, score, decision and label of every validation row (up to a
  million), for decision rates of 0.04 %, the score's top 0.1 % and checks that need labels.

Here they are loaded back (from MLflow, or built from frames for benchmarks and tests) into one `Reference`.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from fraud.artifacts import MONITORING_ARTIFACTS, REFERENCE_FILE, REFERENCE_SCORES_FILE
from fraud.errors import FraudError
from fraud.evaluation.thresholds import DECISIONS, Thresholds
from fraud.schema import TRANSACTION_TYPES
from fraud.settings import Settings

SAMPLE_COLUMNS = ("step", "type", "amount", "oldbalanceOrg", "oldbalanceDest", "score", "decision", "isFraud")
SCORE_COLUMNS = ("step", "type", "amount", "score", "decision", "isFraud")
OTHER_TYPE = "(other)"


class ReferenceError(FraudError):
    """A model version has no usable drift reference."""

    exit_code = 10


@dataclass(frozen=True)
class Reference:
    """One version's reference rows and decision thresholds.

    Attributes:
        version: the registry version (or a label such as ``"seed-1"`` for a reference built in a benchmark).
        sample: decision-time fields, score and decision of a random held-out sample (`SAMPLE_COLUMNS`).
        scores: step, type, amount, score, decision and label of every held-out row (`SCORE_COLUMNS`).
        thresholds: the version's block / review thresholds.
        run_id: the MLflow run that holds the files (None when built from frames).
    """

    version: str
    sample: pd.DataFrame
    scores: pd.DataFrame
    thresholds: Thresholds
    run_id: str | None = None
    sample_types: np.ndarray = field(init=False, repr=False)
    scores_types: np.ndarray = field(init=False, repr=False)
    scores_decisions: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for label, frame, required in (
            ("sample", self.sample, ("step", "type", "amount", "score")),
            ("scores", self.scores, ("step", "type", "amount", "score", "decision")),
        ):
            missing = [c for c in required if c not in frame.columns]
            if missing:
                raise ReferenceError(f"reference {label} of version {self.version} lacks columns {missing}")
            if frame.empty:
                raise ReferenceError(f"reference {label} of version {self.version} has no rows")
        # Codes computed once per reference, not once per window (string columns are slow to compare).
        object.__setattr__(self, "sample_types", type_codes(self.sample["type"]))
        object.__setattr__(self, "scores_types", type_codes(self.scores["type"]))
        object.__setattr__(self, "scores_decisions", decision_codes(self.scores["decision"]))


def type_codes(values: pd.Series) -> np.ndarray:
    """Codes into `TRANSACTION_TYPES`, with one more code (`OTHER_TYPE`) for any type PaySim does not have."""
    categorical = pd.Categorical(values, categories=list(TRANSACTION_TYPES))
    codes = np.asarray(categorical.codes, dtype=np.int64)
    codes[codes < 0] = len(TRANSACTION_TYPES)
    return codes


def decision_codes(values: pd.Series) -> np.ndarray:
    """Codes into `DECISIONS` (0 allow, 1 review, 2 block); anything else is -1."""
    categorical = pd.Categorical(values, categories=[str(d) for d in DECISIONS])
    return np.asarray(categorical.codes, dtype=np.int64)


def from_frames(
    version: str, sample: pd.DataFrame, scores: pd.DataFrame, thresholds: Thresholds, run_id: str | None = None
) -> Reference:
    """A reference from in-memory frames (benchmarks, tests, a reference taken from a past production window)."""
    keep_sample = [c for c in SAMPLE_COLUMNS if c in sample.columns]
    keep_scores = [c for c in SCORE_COLUMNS if c in scores.columns]
    return Reference(
        version,
        sample[keep_sample].reset_index(drop=True),
        scores[keep_scores].reset_index(drop=True),
        thresholds,
        run_id,
    )


def build(
    version: str,
    held_out: pd.DataFrame,
    scores: np.ndarray,
    thresholds: Thresholds,
    *,
    sample_rows: int = 20_000,
    seed: int = 0,
) -> Reference:
    """A reference from held-out transactions and their scores, as the evaluate step builds it."""
    frame = held_out.reset_index(drop=True).copy()
    frame["score"] = np.asarray(scores, dtype=np.float64)
    frame["decision"] = thresholds.decide(frame["score"].to_numpy())
    rng = np.random.default_rng(seed)
    take = np.sort(rng.choice(len(frame), min(sample_rows, len(frame)), replace=False))
    return from_frames(version, frame.iloc[take], frame, thresholds)


def load(settings: Settings, version: str) -> Reference:
    """The reference stored with a registered version (its run's ``monitoring/`` artifacts).

    Raises:
        ReferenceError: the version does not exist or was registered before references were stored.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    from fraud.registry import connect

    client = connect(settings)
    try:
        model_version = client.get_model_version(settings.model_name, version)
    except MlflowException as exc:
        raise ReferenceError(
            f"no version {version} of '{settings.model_name}' in the registry at {settings.tracking_uri} "
            f"({exc.message}); list versions in the MLflow UI or run `fraudctl pipeline run`"
        ) from exc
    run_id = str(model_version.run_id)
    with tempfile.TemporaryDirectory(prefix="fraud-reference-") as tmp:
        try:
            local = Path(
                mlflow.artifacts.download_artifacts(
                    run_id=run_id, artifact_path=MONITORING_ARTIFACTS, dst_path=tmp, tracking_uri=settings.tracking_uri
                )
            )
            sample = pq.read_table(local / REFERENCE_FILE).to_pandas()
            scores = pq.read_table(local / REFERENCE_SCORES_FILE).to_pandas()
            thresholds_path = Path(
                mlflow.artifacts.download_artifacts(
                    run_id=run_id,
                    artifact_path="evaluation/thresholds.json",
                    dst_path=tmp,
                    tracking_uri=settings.tracking_uri,
                )
            )
            thresholds = Thresholds.from_dict(json.loads(thresholds_path.read_text()))
        except (MlflowException, OSError) as exc:
            raise ReferenceError(
                f"version {version} of '{settings.model_name}' (run {run_id}) has no drift reference under "
                f"'{MONITORING_ARTIFACTS}/' ({exc}); it was registered before references were stored: retrain it "
                "with `fraudctl pipeline run`"
            ) from exc
    return from_frames(str(version), sample, scores, thresholds, run_id)


def resolve_version(settings: Settings, version: str | None) -> str:
    """The version to monitor: the one given, else the one the serving alias points at.

    Raises:
        ReferenceError: no version given and the alias points nowhere.
    """
    if version:
        return str(version)
    from fraud.registry import connect, version_by_alias

    found = version_by_alias(connect(settings), settings.model_name, settings.model_alias)
    if found is None:
        raise ReferenceError(
            f"'{settings.model_name}' has no '@{settings.model_alias}' version to monitor; train one with "
            "`fraudctl pipeline run` or pass --version"
        )
    return str(found.version)
