"""The layout of the files the pipeline's steps hand to one another: the one module that knows it.

A step writes an artifact and a later step reads it; both call the functions here, so no job imports another
job for a file name or a column prefix, and changing the layout is one edit.

- A **block** (train / validation / test) is one Parquet file: the raw decision-time columns, the label and the
  feature columns (prefixed ``f_``), so later steps read features without recomputing them, and the champion gate
  and drift reference can still replay raw rows through any model's own feature function.
- The **model directory** (the tune step's Model artifact) is a native model (`fraud.modeling.save_native`) plus
  ``tuning.json``, the study's summary.
- The **evaluation directory** (the evaluate step's output) holds what registration attaches to the model
  version: thresholds, metrics, the HTML report, its figures and the drift reference sample.
- A **failure record** is what a failed step leaves beside its outputs, for the runner to report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fraud import schema
from fraud.features import FeatureSpec, build_features

FEATURE_PREFIX: Final = "f_"
"""Prefix of the feature columns in a block file (``f_log_amount``, …)."""
KEPT_RAW_COLUMNS: Final = (*schema.DECISION_TIME_FIELDS, schema.LABEL)
"""Raw columns a block file keeps beside its features."""

TUNING_FILE: Final = "tuning.json"
THRESHOLDS_FILE: Final = "thresholds.json"
EVALUATION_FILE: Final = "evaluation.json"
REFERENCE_FILE: Final = "reference.parquet"
REFERENCE_SCORES_FILE: Final = "reference_scores.parquet"
MONITORING_ARTIFACTS: Final = "monitoring"
"""Folder of the version's run holding the drift reference files (`monitoring.reference` loads them)."""
REPORT_FILE: Final = "report.html"
FIGURES_DIR: Final = "figures"
FAILURE_FILE: Final = "step-failure.json"
"""What a failed step leaves beside its outputs: which step, and the error it raised (`write_failure`)."""


@dataclass(frozen=True)
class Block:
    """A block read back: raw rows, feature matrix, labels and amounts (for the cost metric)."""

    raw: pa.Table
    features: np.ndarray
    labels: np.ndarray
    amounts: np.ndarray

    @property
    def rows(self) -> int:
        return int(self.raw.num_rows)


def write_block(table: pa.Table, spec: FeatureSpec, path: Path) -> None:
    """Build the block's features with ``spec`` and write them beside its raw decision-time columns."""
    features = build_features(table, spec)
    raw = table.select(list(KEPT_RAW_COLUMNS))
    columns = {name: raw[name] for name in raw.column_names}
    for index, name in enumerate(spec.names):
        columns[FEATURE_PREFIX + name] = pa.array(features[:, index])
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path, compression="zstd")


def read_block(path: Path, spec: FeatureSpec) -> Block:
    """A block written by `write_block`, features in ``spec``'s column order."""
    table = pq.read_table(path)
    features = np.column_stack([table[FEATURE_PREFIX + n].to_numpy() for n in spec.names]).astype(np.float32)
    raw = table.select(list(KEPT_RAW_COLUMNS))
    return Block(
        raw=raw,
        features=features,
        labels=table[schema.LABEL].to_numpy().astype(np.int8),
        amounts=table["amount"].to_numpy(),
    )


def write_tuning_summary(model_dir: Path, summary: dict[str, Any]) -> None:
    (model_dir / TUNING_FILE).write_text(json.dumps(summary, indent=2, default=str))


def read_tuning_summary(model_dir: Path) -> dict[str, Any]:
    """The study's summary next to the model; empty when the model came from elsewhere."""
    path = model_dir / TUNING_FILE
    return dict(json.loads(path.read_text())) if path.is_file() else {}


@dataclass(frozen=True)
class EvaluationFiles:
    """The files of an evaluation directory, by role."""

    thresholds: Path
    evaluation: Path
    reference: Path
    reference_scores: Path
    report: Path
    figures: Path

    @classmethod
    def under(cls, root: Path) -> EvaluationFiles:
        names = (THRESHOLDS_FILE, EVALUATION_FILE, REFERENCE_FILE, REFERENCE_SCORES_FILE, REPORT_FILE, FIGURES_DIR)
        return cls(*(root / name for name in names))


@dataclass(frozen=True)
class StepFailure:
    """A failed step's own account of its failure."""

    step: str
    reason: str


def write_failure(output: Path, step: str, reason: str) -> None:
    """Record a step's failure next to one of its output artifacts (``output``: the artifact's local path)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    (output.parent / FAILURE_FILE).write_text(json.dumps({"step": step, "reason": reason}))


def read_failure(run_root: Path) -> StepFailure | None:
    """The failure recorded under one run's artifact root (a run stops at its first failed step), if any."""
    for path in sorted(run_root.rglob(FAILURE_FILE)):
        record = json.loads(path.read_text())
        return StepFailure(step=str(record["step"]), reason=str(record["reason"]))
    return None
