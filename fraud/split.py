"""Forward-in-time split of a transaction log into train / validation / test blocks.

Fraud models are used on the future, so they are judged on it: blocks are cut by step, never at random, and
every training-time statistic (feature constants, thresholds) comes from earlier blocks only.

The defaults cut the month at day 14 and day 17: train on days 1–14, choose thresholds on days 15–17, test on
days 18–31 (on the published log: 375,203 test transactions, fraud rate 0.97%). The published strict-feature
results use another split, their test block being the log's last week (steps 576–743, 162,303 transactions,
fraud rate 1.14%: `fraud.data.published.Published.last_week`); ``benchmarks/pipeline.py --split published``
runs the pipeline on that split.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from fraud import schema
from fraud.errors import PipelineError


@dataclass(frozen=True)
class SplitBoundaries:
    """Last step of the training block and last step of the validation block (both inclusive)."""

    train_end_step: int = 14 * schema.HOURS_PER_DAY
    valid_end_step: int = 17 * schema.HOURS_PER_DAY

    def __post_init__(self) -> None:
        if not 0 < self.train_end_step < self.valid_end_step:
            raise PipelineError(
                f"split boundaries must satisfy 0 < train_end_step < valid_end_step, got "
                f"{self.train_end_step} and {self.valid_end_step}"
            )


@dataclass(frozen=True)
class BlockStats:
    rows: int
    fraud: int
    first_step: int
    last_step: int

    @property
    def fraud_rate(self) -> float:
        return self.fraud / self.rows if self.rows else 0.0


def forward_split(table: pa.Table, boundaries: SplitBoundaries) -> dict[str, pa.Table]:
    """The three blocks, each sorted by step (stable, so the log's order within a step is kept).

    Raises:
        PipelineError: a block would be empty or hold no fraud (the message names it, its step range and the
            data's step range, so the user can move a boundary).
    """
    steps = table[schema.TIME]
    ordered = table.take(pc.sort_indices(steps, sort_keys=[(schema.TIME, "ascending")]))
    ordered_steps = ordered[schema.TIME]
    masks = {
        "train": pc.less_equal(ordered_steps, boundaries.train_end_step),
        "validation": pc.and_(
            pc.greater(ordered_steps, boundaries.train_end_step),
            pc.less_equal(ordered_steps, boundaries.valid_end_step),
        ),
        "test": pc.greater(ordered_steps, boundaries.valid_end_step),
    }
    blocks = {name: ordered.filter(mask) for name, mask in masks.items()}
    bounds = pc.min_max(steps)
    data_range = f"the data covers steps {bounds['min'].as_py()}..{bounds['max'].as_py()}"
    ranges = {
        "train": f"steps ≤ {boundaries.train_end_step}",
        "validation": f"steps {boundaries.train_end_step + 1}..{boundaries.valid_end_step}",
        "test": f"steps > {boundaries.valid_end_step}",
    }
    for name, block in blocks.items():
        if block.num_rows == 0:
            raise PipelineError(
                f"the {name} block ({ranges[name]}) is empty; {data_range}: move train_end_step/valid_end_step"
            )
        if pc.sum(block[schema.LABEL]).as_py() == 0:
            raise PipelineError(
                f"the {name} block ({ranges[name]}) holds no fraud among {block.num_rows:,} rows; {data_range}: "
                "use more rows or move train_end_step/valid_end_step"
            )
    return blocks


def block_stats(block: pa.Table) -> BlockStats:
    bounds = pc.min_max(block[schema.TIME])
    return BlockStats(
        rows=block.num_rows,
        fraud=int(pc.sum(block[schema.LABEL]).as_py() or 0),
        first_step=int(bounds["min"].as_py()),
        last_step=int(bounds["max"].as_py()),
    )


def split_metrics(blocks: dict[str, pa.Table]) -> dict[str, float]:
    """Flat metrics (rows, fraud, fraud rate, step range per block) for KFP Metrics and MLflow."""
    metrics: dict[str, float] = {}
    for name, block in blocks.items():
        stats = block_stats(block)
        metrics[f"{name}_rows"] = stats.rows
        metrics[f"{name}_fraud"] = stats.fraud
        metrics[f"{name}_fraud_rate"] = stats.fraud_rate
        metrics[f"{name}_first_step"] = stats.first_step
        metrics[f"{name}_last_step"] = stats.last_step
    return metrics
