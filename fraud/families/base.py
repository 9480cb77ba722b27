"""What every model family is: a fitted model's interface (`NativeModel`) and a family's registration entry
(`ModelFamily`), with the few pieces the families share.

A family is one module of this package that defines its `NativeModel` subclass and a `FAMILY` entry: how to
search its hyper-parameters, fit it with fixed ones, train it in stages under a pruner, and save and load it.
`fraud.families` lists the families in one place; `fraud.modeling` (persistence) and `fraud.tuning` (the study)
only ever go through that list. Nothing here imports a model library: each family imports its own when a model of
that family is built or loaded, so a predictor serving one family never pays for the others.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from scipy.special import expit

from fraud.errors import FraudError

Family = str
"""A registered family's name (``xgboost``, ``hist_gb``, ``logreg``: the keys of `fraud.families.REGISTRY`)."""


class NativeModelError(FraudError):
    """A native model directory is missing, incomplete, or from an unknown family or format."""

    exit_code = 9


def training_reference(X: np.ndarray, sample_weight: np.ndarray | None = None) -> np.ndarray:
    """Per-feature (weighted) medians of the training matrix: the "typical row" contributions are measured from.

    Weights matter when legitimate rows were subsampled for tuning: with weights ``1/rate`` the medians are those
    of the full training block, not of a sample enriched in fraud.
    """
    X64 = np.asarray(X, dtype=np.float64)
    if X64.ndim != 2 or X64.shape[0] == 0:
        raise ValueError(f"need a non-empty 2-D matrix, got shape {X64.shape}")
    if sample_weight is None:
        return np.asarray(np.median(X64, axis=0), dtype=np.float64)
    w = np.asarray(sample_weight, dtype=np.float64)
    order = np.argsort(X64, axis=0, kind="stable")
    cum = np.cumsum(w[order], axis=0)
    half = cum[-1] / 2.0
    idx = np.argmax(cum >= half[np.newaxis, :], axis=0)
    return np.asarray(X64[order[idx, np.arange(X64.shape[1])], np.arange(X64.shape[1])], dtype=np.float64)


class NativeModel(ABC):
    """A fitted fraud model of one family: probability, log-odds and per-feature contributions.

    Inputs are the feature matrix `fraud.features.build_features` returns (float32, columns in
    ``feature_names`` order). Rows are scored independently, so one row alone and the same row inside a batch
    give identical results.
    """

    family: Family

    def __init__(self, feature_names: Sequence[str], reference: np.ndarray, params: Mapping[str, Any]) -> None:
        self.feature_names: tuple[str, ...] = tuple(feature_names)
        self.reference: np.ndarray = np.asarray(reference, dtype=np.float64).reshape(-1)
        self.params: dict[str, Any] = dict(params)
        if self.reference.shape[0] != len(self.feature_names):
            raise ValueError(f"reference has {self.reference.shape[0]} values for {len(self.feature_names)} features")

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    def _check(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != len(self.feature_names):
            raise ValueError(
                f"expected a feature matrix of shape (n, {len(self.feature_names)}) with columns "
                f"{', '.join(self.feature_names)}; got shape {X.shape}"
            )
        return X

    @property
    @abstractmethod
    def estimator(self) -> Any:
        """The library object (an ``xgboost.Booster`` or a fitted scikit-learn estimator)."""

    @abstractmethod
    def predict_logit(self, X: np.ndarray) -> np.ndarray:
        """Log-odds of fraud per row (1-D float64)."""

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Fraud probability per row (1-D float64)."""
        return np.asarray(expit(self.predict_logit(X)), dtype=np.float64)

    @abstractmethod
    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Per-feature contributions to the log-odds plus a bias column: shape (n, k + 1), rows sum to the logit."""


# --------------------------------------------------------------------------------------------------- tuning


class Stopped(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised inside a trial to end it early as pruned (median rule or deadline)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Reporter(Protocol):
    """What a staged fit reports to: intermediate validation AP (for the pruner), and the study's deadline."""

    def check_deadline(self) -> None:
        """Raise `Stopped` once the study's time is up."""

    def report(self, step: int, value: float, *, prunable: bool = True) -> None:
        """Record AP after ``step`` boosting rounds; raise `Stopped` when the pruner says so."""


class TrainingContext(Protocol):
    """Everything a study's trials share (built once by `fraud.tuning`): data, monitor sample and budget."""

    X: np.ndarray
    y: np.ndarray
    weight: np.ndarray
    monitor_rows: np.ndarray
    monitor_rows64: np.ndarray
    feature_names: tuple[str, ...]
    reference: np.ndarray
    seed: int
    n_jobs: int
    report_every: int
    patience: int
    cache: dict[str, Any]
    """Per-family objects worth building once per study (XGBoost's matrices)."""

    def monitor_ap(self, scores: np.ndarray) -> float:
        """Average precision of scores (any monotone transform of the probability) on the monitor sample."""

    def final_ap(self, model: NativeModel) -> float:
        """Average precision of a model on the whole validation block: a trial's value."""


@dataclass
class Outcome:
    """A trial's fitted model, its validation AP, the parameters as fitted, and why it stopped early (if so)."""

    model: NativeModel
    value: float
    params: dict[str, Any]
    stopped: str | None


class Suggest(Protocol):
    """Optuna's suggestion calls as a family's search space uses them (names are prefixed by the family)."""

    def real(self, name: str, low: float, high: float, *, log: bool = False) -> float: ...

    def integer(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int: ...


@dataclass(frozen=True)
class FitData:
    """Rows to fit one family on with fixed parameters (a refit of a trial), and how."""

    X: np.ndarray
    y: np.ndarray
    weight: np.ndarray
    feature_names: tuple[str, ...]
    reference: np.ndarray
    seed: int
    n_jobs: int


@dataclass(frozen=True)
class StoredModel:
    """A saved model's file and the metadata stored beside it (`fraud.modeling.save_native`), and how to load it."""

    path: Path
    feature_names: tuple[str, ...]
    reference: np.ndarray
    params: dict[str, Any]
    nthread: int
    """Prediction threads of the tree families."""
    fast: bool
    """False: score through the library's public API only (no `fraud.compat` private calls)."""


def recorded(params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters a model records (the study's ``family`` choice is not one of them)."""
    return {k: v for k, v in params.items() if k != "family"}


def save_pickled(model: NativeModel, path: Path) -> None:
    """joblib, i.e. pickle: loading runs code from the file, so model directories must only ever come from the
    trusted registry/store, and load reliably only with the library version recorded beside them."""
    import joblib

    joblib.dump(model.estimator, path)


def load_pickled(path: Path) -> Any:
    import joblib

    return joblib.load(path)


@contextmanager
def threads(n_jobs: int) -> Iterator[None]:
    """Cap OpenMP/BLAS threads of the scikit-learn families (they would otherwise take every core)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=n_jobs):
        yield


@dataclass(frozen=True)
class ModelFamily:
    """One model family's registration: everything the platform does with a family goes through these."""

    name: Family
    model_file: str
    """File name of the library's own model file inside a native model directory."""
    libraries: tuple[str, ...]
    """Distributions whose versions are recorded with a saved model (a mismatch on load is logged)."""
    search_space: Callable[[Suggest, int], dict[str, Any]]
    """The hyper-parameters of one trial, given the suggestion calls and the largest number of rounds."""
    fit: Callable[[Mapping[str, Any], FitData], NativeModel]
    """Fixed parameters, no validation, no early stopping (a refit of another worker's best trial)."""
    train: Callable[[TrainingContext, dict[str, Any], Reporter], Outcome]
    """One trial: a staged fit that reports to the pruner and keeps its best stage."""
    save: Callable[[NativeModel, Path], None]
    """Write the library's model file (the model's metadata is written by `fraud.modeling.save_native`)."""
    load: Callable[[StoredModel], NativeModel]
    """Read the library's model file back."""
