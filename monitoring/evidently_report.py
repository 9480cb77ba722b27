"""Evidently's drift report (the HTML users know) and its default verdicts, read back to set beside ours.

Evidently 0.7's DataDriftPreset picks its tests by the *reference* size: above 1,000 reference rows a
normalised Wasserstein distance (numeric) or Jensen-Shannon distance (categorical) with a fixed 0.1 threshold,
below it KS / chi-square at p < 0.05, and "dataset drift" when half the columns drift. On fraud traffic those
defaults alarm on small windows and miss shifts that matter (see `monitoring.drift`), so the platform's verdict
comes from `monitoring.drift`; this module only renders Evidently's report and reports what Evidently
*would* have said, so the two can be compared column by column.

Importing Evidently takes 8-50 s on two cores, so it is imported inside the functions, never at module import.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from fraud.schema import HOURS_PER_DAY

NUMERIC: Final = ("amount", "oldbalanceOrg", "oldbalanceDest", "score")
CATEGORICAL: Final = ("type", "hour")


@dataclass(frozen=True)
class EvidentlyColumn:
    """Evidently's default verdict on one column."""

    name: str
    method: str
    score: float
    threshold: float
    drift: bool


@dataclass(frozen=True)
class EvidentlyVerdict:
    """Evidently's verdicts on a window: per column, and its dataset-level rule (half the columns drifted)."""

    columns: dict[str, EvidentlyColumn]
    dataset_drift: bool
    drifted_share: float

    @property
    def any_column(self) -> bool:
        return any(c.drift for c in self.columns.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset_drift": self.dataset_drift,
            "any_column_drift": self.any_column,
            "drifted_share": self.drifted_share,
            "columns": [vars(c) for c in self.columns.values()],
        }


def frame_for_report(frame: pd.DataFrame) -> pd.DataFrame:
    """The columns Evidently compares: amount, balances, type, hour of day (from ``step``) and score."""
    out = pd.DataFrame(index=range(len(frame)))
    for name in NUMERIC:
        if name in frame.columns:
            out[name] = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64)
    out["type"] = frame["type"].astype(str).to_numpy()
    out["hour"] = (np.asarray(frame["step"], dtype=np.int64) % HOURS_PER_DAY).astype(str)
    return out


def run_report(reference: pd.DataFrame, current: pd.DataFrame) -> Any:
    """Evidently's DataDriftPreset (default settings) on the window against the reference sample.

    Returns:
        The Evidently snapshot (``.save_html(path)``, ``.dict()``).
    """
    os.environ.setdefault("DO_NOT_TRACK", "1")  # Evidently sends usage telemetry unless this is set
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    ref = frame_for_report(reference)
    cur = frame_for_report(current)
    columns = [c for c in ref.columns if c in cur.columns]
    definition = DataDefinition(
        numerical_columns=[c for c in columns if c in NUMERIC],
        categorical_columns=[c for c in columns if c in CATEGORICAL],
    )
    report = Report([DataDriftPreset()], include_tests=True)
    return report.run(
        Dataset.from_pandas(cur[columns], data_definition=definition),
        Dataset.from_pandas(ref[columns], data_definition=definition),
    )


def verdict(snapshot: Any) -> EvidentlyVerdict:
    """Evidently's own verdicts, read from its tests (the per-column verdict exists only as a test)."""
    data = snapshot.dict()
    values = {m.get("metric_id") or m.get("id"): m.get("value") for m in data.get("metrics", [])}
    columns: dict[str, EvidentlyColumn] = {}
    dataset_drift = False
    drifted_share = 0.0
    for test in data.get("tests", []):
        params = test.get("metric_config", {}).get("params", {})
        if params.get("type") == "evidently:metric_v2:ValueDrift":
            name = str(params["column"])
            value = values.get(test["metric_config"]["metric_id"])
            columns[name] = EvidentlyColumn(
                name=name,
                method=str(params.get("method")),
                score=float(value) if isinstance(value, int | float) else float("nan"),
                threshold=float(params.get("threshold") or float("nan")),
                drift=test.get("status") == "FAIL",
            )
        elif params.get("type") == "evidently:metric_v2:DriftedColumnsCount":
            dataset_drift = test.get("status") == "FAIL"
            value = values.get(test["metric_config"]["metric_id"])
            if isinstance(value, dict):
                drifted_share = float(value.get("share", 0.0))
    return EvidentlyVerdict(columns, dataset_drift, drifted_share)


def save_report(snapshot: Any, path: Path) -> Path:
    """Write Evidently's HTML report (about 4 MB: it embeds its JavaScript)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(path))
    return path
