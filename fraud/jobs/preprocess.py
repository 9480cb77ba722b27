"""Pipeline step 2: clean, split forward in time, fit the feature spec on the training block, build features.

Each block is written as one Parquet file holding the raw decision-time columns, the label and the feature
columns (prefixed ``f_``), so later steps read features without recomputing them, and the champion gate and
drift reference can still replay raw rows through any model's own feature function.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fraud import schema
from fraud.data.adapters import get_adapter
from fraud.features import FeatureSetName, FeatureSpec, build_features, fit_spec
from fraud.registry import connect
from fraud.settings import Settings
from fraud.split import SplitBoundaries, forward_split, split_metrics

log = logging.getLogger(__name__)

FEATURE_PREFIX = "f_"
KEPT_RAW_COLUMNS = (*schema.DECISION_TIME_FIELDS, schema.LABEL)


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
    features = build_features(table, spec)
    raw = table.select(list(KEPT_RAW_COLUMNS))
    columns = {name: raw[name] for name in raw.column_names}
    for index, name in enumerate(spec.names):
        columns[FEATURE_PREFIX + name] = pa.array(features[:, index])
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path, compression="zstd")


def read_block(path: Path, spec: FeatureSpec) -> Block:
    table = pq.read_table(path)
    features = np.column_stack([table[FEATURE_PREFIX + n].to_numpy() for n in spec.names]).astype(np.float32)
    raw = table.select(list(KEPT_RAW_COLUMNS))
    return Block(
        raw=raw,
        features=features,
        labels=table[schema.LABEL].to_numpy().astype(np.int8),
        amounts=table["amount"].to_numpy(),
    )


def load_clean(path: Path) -> pa.Table:
    """Read the raw artifact and re-check it against the schema (the artifact may come from any store)."""
    return get_adapter("paysim").normalize_table(pq.read_table(path))


def run(
    settings: Settings,
    *,
    raw_path: Path,
    feature_set: FeatureSetName,
    boundaries: SplitBoundaries,
    outputs: dict[str, Path],
    spec_path: Path,
    run_id: str | None,
) -> dict[str, float]:
    """Write the three blocks and the spec; return the split statistics."""
    table = load_clean(raw_path)
    blocks = forward_split(table, boundaries)
    spec = fit_spec(blocks["train"], feature_set)
    for name, block in blocks.items():
        write_block(block, spec, outputs[name])
    spec_path.parent.mkdir(parents=True, exist_ok=True)
    spec_path.write_text(spec.to_json())
    metrics = split_metrics(blocks)
    for name in blocks:
        log.info(
            "%s: %d rows, %d fraud (%.3f%%)",
            name,
            metrics[f"{name}_rows"],
            metrics[f"{name}_fraud"],
            100 * metrics[f"{name}_fraud_rate"],
        )
    if run_id:
        connect(settings)
        with mlflow.start_run(run_id=run_id):
            mlflow.log_params(
                {
                    "feature_set": feature_set,
                    "train_end_step": boundaries.train_end_step,
                    "valid_end_step": boundaries.valid_end_step,
                    "feature_spec_version": spec.version,
                }
            )
            mlflow.log_metrics(metrics)
            mlflow.log_dict(spec.to_dict(), "features/feature_spec.json")
            if spec.notes:
                mlflow.set_tag("feature_set_note", spec.notes[0])
    return metrics
