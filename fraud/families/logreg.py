"""The ``logreg`` family: a scikit-learn ``Pipeline(StandardScaler, LogisticRegression)``.

Scored with its coefficients in numpy; contributions are coefficient × standardised deviation from the training
mean, exact in log-odds. A trial fits once and reports once (there is nothing to prune).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from fraud.families.base import (
    FitData,
    ModelFamily,
    NativeModel,
    Outcome,
    load_pickled,
    recorded,
    save_pickled,
    threads,
)

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

    from fraud.families.base import Family, Reporter, StoredModel, Suggest, TrainingContext


class LogRegModel(NativeModel):
    """A scikit-learn ``Pipeline(StandardScaler, LogisticRegression)``, scored from its coefficients in numpy.

    With z_j = (x_j − mean_j) / scale_j the log-odds are exactly intercept + Σ coef_j·z_j, so the contribution
    of feature j is coef_j·z_j (its pull away from an average training transaction) and the bias is the
    intercept: exact, and about 10 µs per call instead of sklearn's ~200 µs of input validation.
    """

    family: Family = "logreg"

    def __init__(
        self,
        pipeline: Pipeline,
        feature_names: Sequence[str],
        reference: np.ndarray,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(feature_names, reference, params or {})
        scaler = pipeline[0]
        classifier = pipeline[-1]
        self._pipeline = pipeline
        self._mean = np.asarray(scaler.mean_, dtype=np.float64)
        self._scale = np.asarray(scaler.scale_, dtype=np.float64)
        self._coef = np.asarray(classifier.coef_, dtype=np.float64).reshape(-1)
        self._intercept = float(np.asarray(classifier.intercept_).reshape(-1)[0])
        if self._coef.shape[0] != self.n_features:
            raise ValueError(f"classifier has {self._coef.shape[0]} coefficients, expected {self.n_features}")
        if not (np.isfinite(self._scale).all() and np.isfinite(self._coef).all() and math.isfinite(self._intercept)):
            raise ValueError("logistic regression has non-finite scaling or coefficients")

    @property
    def estimator(self) -> Pipeline:
        return self._pipeline

    def _terms(self, X: np.ndarray) -> np.ndarray:
        return ((np.asarray(X, dtype=np.float64) - self._mean) / self._scale) * self._coef

    def predict_logit(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self._terms(self._check(X)).sum(axis=1) + self._intercept, dtype=np.float64)

    def contributions(self, X: np.ndarray) -> np.ndarray:
        terms = self._terms(self._check(X))
        out = np.empty((terms.shape[0], terms.shape[1] + 1), dtype=np.float64)
        out[:, :-1] = terms
        out[:, -1] = self._intercept
        return out


# --------------------------------------------------------------------------------------------------- training


def search_space(suggest: Suggest, max_rounds: int) -> dict[str, Any]:
    """Log-scaled inverse regularisation and a positive-class weight up to 100."""
    return {
        "C": suggest.real("C", 1e-4, 1e2, log=True),
        "pos_weight": suggest.real("pos_weight", 1.0, 100.0, log=True),
    }


def _pipeline(params: Mapping[str, Any], *, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline(
        [
            ("scale", StandardScaler()),
            (
                "clf",
                LogisticRegression(
                    C=float(params["C"]),
                    class_weight={0: 1.0, 1: float(params["pos_weight"])},
                    max_iter=2000,
                    random_state=seed,
                ),
            ),
        ]
    )


def fit(params: Mapping[str, Any], data: FitData) -> NativeModel:
    pipeline = _pipeline(params, seed=data.seed)
    w = data.weight
    with threads(data.n_jobs), warnings.catch_warnings():
        # lbfgs convergence notices, and StandardScaler's sqrt of a tiny negative weighted variance on a
        # constant column (it then uses scale 1, as for any constant column)
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        pipeline.fit(np.asarray(data.X, dtype=np.float64), data.y, scale__sample_weight=w, clf__sample_weight=w)
    return LogRegModel(pipeline, data.feature_names, data.reference, recorded(params))


def train(context: TrainingContext, params: dict[str, Any], reporter: Reporter) -> Outcome:
    """One fit on the tuning set, its validation AP reported once (not prunable)."""
    data = FitData(
        context.X, context.y, context.weight, context.feature_names, context.reference, context.seed, context.n_jobs
    )
    model = fit(params, data)
    value = context.final_ap(model)
    reporter.report(0, value, prunable=False)
    return Outcome(model, value, dict(params), None)


def load(stored: StoredModel) -> NativeModel:
    """Threads and the fast path do not apply: scoring is numpy on the coefficients (public attributes)."""
    return LogRegModel(load_pickled(stored.path), stored.feature_names, stored.reference, stored.params)


FAMILY: Final = ModelFamily(
    name="logreg",
    model_file="model.joblib",
    libraries=("scikit-learn",),
    search_space=search_space,
    fit=fit,
    train=train,
    save=save_pickled,
    load=load,
)
