"""A small generated world for the monitoring tests: a reference month, a model scored on it, and windows.

A logistic regression on the strict features of a 200k-row generated month stands in for the registered model
(the drift tests read scores and decisions, not how they were made); windows come from other seeds' months,
on the reference's own days (no drift) or from scenario presets (known drift).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from fraud.data.generator import generate
from fraud.data.scenarios import Scenario
from fraud.evaluation.thresholds import choose_thresholds
from fraud.features import build_features, fit_spec
from fraud.modeling import NativeModel
from fraud.split import SplitBoundaries, forward_split
from fraud.tuning import fit_model
from monitoring import reference as reference_module
from monitoring.reference import Reference

MONTH_ROWS = 200_000

WindowFactory = Callable[..., pd.DataFrame]


class World:
    """The reference month's model, thresholds and reference, and a maker of scored windows."""

    def __init__(self) -> None:
        blocks = forward_split(generate(MONTH_ROWS, seed=1), SplitBoundaries())
        self.spec = fit_spec(blocks["train"], "strict")
        features = build_features(blocks["train"], self.spec)
        self.model: NativeModel = fit_model(
            "logreg",
            {"C": 1.0, "pos_weight": 50.0},
            features,
            blocks["train"]["isFraud"].to_numpy(),
            feature_names=self.spec.names,
        )
        held_out = blocks["validation"].to_pandas()
        scores = self.score(held_out)
        self.thresholds = choose_thresholds(scores, held_out["isFraud"].to_numpy(), held_out["amount"].to_numpy())
        self.reference: Reference = reference_module.build("1", held_out, scores, self.thresholds)

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.model.predict_proba(build_features(frame.to_dict("series"), self.spec)))

    def month(self, seed: int, scenario: Scenario | None = None) -> pd.DataFrame:
        """The validation days of another month, scored and decided as the serving model would."""
        frame = forward_split(generate(MONTH_ROWS, seed=seed, scenario=scenario), SplitBoundaries())["validation"]
        scored: pd.DataFrame = frame.to_pandas()
        scored["score"] = self.score(scored)
        scored["decision"] = self.thresholds.decide(scored["score"].to_numpy())
        return scored


@pytest.fixture(scope="session")
def world() -> World:
    return World()


def sample(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    take = np.sort(np.random.default_rng(seed).choice(len(frame), rows, replace=False))
    chosen: pd.DataFrame = frame.iloc[take].reset_index(drop=True)
    return chosen
