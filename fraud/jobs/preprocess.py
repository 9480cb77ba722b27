"""Pipeline step 2: clean, split forward in time, fit the feature spec on the training block, build features.

Each block is written as one Parquet file (`fraud.artifacts.write_block`: raw decision-time columns, label and
features), which the later steps read back with `fraud.artifacts.read_block`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import mlflow
import pyarrow as pa
import pyarrow.parquet as pq

from fraud.artifacts import write_block
from fraud.data.adapters import get_adapter
from fraud.features import FeatureSetName, fit_spec
from fraud.registry import connect
from fraud.settings import Settings
from fraud.split import SplitBoundaries, forward_split, split_metrics

log = logging.getLogger(__name__)


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
