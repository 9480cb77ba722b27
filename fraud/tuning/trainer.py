"""What a study's trials share and how one trial reports: the `fraud.families.base.TrainingContext` of a study.

`StudyData` holds the tuning set, the validation block and its monitor sample, built once per study; each trial
hands it to its family's ``train`` with a `TrialReporter` that feeds the pruner and enforces the deadline.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import optuna

from fraud.families import family
from fraud.families.base import Family, FitData, NativeModel, Outcome, Stopped, training_reference
from fraud.tuning.config import TuneConfig, TuningError
from fraud.tuning.sampling import TuningSet, average_precision, sample_negatives


class TrialReporter:
    """Feeds intermediate AP to the trial (and its pruner) and enforces the study's deadline."""

    def __init__(self, trial: optuna.Trial | None, deadline: float | None) -> None:
        self.trial = trial
        self.deadline = deadline
        self.steps: list[tuple[int, float]] = []

    def check_deadline(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise Stopped("deadline")

    def report(self, step: int, value: float, *, prunable: bool = True) -> None:
        self.steps.append((step, value))
        if self.trial is None:
            return
        self.trial.report(value, step)
        if prunable and self.trial.should_prune():
            raise Stopped("pruned")


class StudyData:
    """Everything trials share: the tuning set, the validation block and the monitor sample, built once."""

    def __init__(
        self,
        tuning: TuningSet,
        X_valid: np.ndarray,
        y_valid: np.ndarray,
        feature_names: Sequence[str],
        config: TuneConfig,
    ) -> None:
        self.tuning = tuning
        self.X = tuning.X
        self.y = tuning.y
        self.weight = tuning.weight
        self.X_valid = X_valid
        self.y_valid = np.asarray(y_valid)
        self.feature_names = tuple(feature_names)
        self.config = config
        self.seed = config.seed
        self.n_jobs = config.n_jobs
        self.report_every = config.report_every
        self.patience = config.patience
        self.reference = training_reference(tuning.X, tuning.weight)
        monitor = sample_negatives(
            X_valid, self.y_valid, rate=None, max_rows=config.max_monitor_rows, seed=config.seed + 1
        )
        self.monitor = monitor
        self.monitor_rows = monitor.X
        self.monitor_rows64 = np.ascontiguousarray(monitor.X, dtype=np.float64)
        self.cache: dict[str, Any] = {}

    def monitor_ap(self, scores: np.ndarray) -> float:
        weight = None if self.monitor.rate >= 1.0 else self.monitor.weight
        return average_precision(self.monitor.y, scores, weight)

    def final_ap(self, model: NativeModel) -> float:
        return average_precision(self.y_valid, model.predict_logit(self.X_valid))

    def train(self, name: Family, params: dict[str, Any], reporter: TrialReporter) -> Outcome:
        return family(name).train(self, params, reporter)


def fit_model(
    name: Family,
    params: Mapping[str, Any],
    X: np.ndarray,
    y: np.ndarray,
    *,
    feature_names: Sequence[str],
    sample_weight: np.ndarray | None = None,
    reference: np.ndarray | None = None,
    seed: int = 0,
    n_jobs: int = 2,
) -> NativeModel:
    """Fit one family with fixed hyper-parameters (as a trial records them), no validation, no early stopping.

    Used to refit another worker's best trial, and by anyone who wants a model for known parameters. For tree
    families the number of rounds is ``n_estimators``/``max_iter`` exactly.
    """
    try:
        entry = family(name)
    except KeyError as exc:
        raise TuningError(str(exc.args[0])) from None
    X = np.asarray(X)
    y = np.asarray(y)
    w = np.ones(X.shape[0]) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    ref = training_reference(X, w) if reference is None else reference
    return entry.fit(params, FitData(X, y, w, tuple(feature_names), ref, seed, n_jobs))
