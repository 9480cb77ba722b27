"""The ``xgboost`` family: an ``xgboost.Booster`` trained with ``objective=binary:logistic``.

Scores through ``inplace_predict`` (no DMatrix); contributions are XGBoost's exact TreeSHAP (``pred_contribs``),
both through XGBoost's own C calls when they give bitwise the public API's answers (`fraud.compat.xgboost`). Trials grow
the booster round by round, report the monitor sample's AP every ``report_every`` rounds, and keep the booster
sliced to their best report.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from fraud.families.base import FitData, ModelFamily, NativeModel, Outcome, recorded

if TYPE_CHECKING:
    import xgboost as xgb

    from fraud.compat.xgboost import DirectCalls
    from fraud.families.base import Family, Reporter, StoredModel, Suggest, TrainingContext

logger = logging.getLogger(__name__)

MAX_BIN: Final = 256
"""Histogram bins per feature (the same in trials and refits, so a refit reproduces a trial's model)."""


class XGBoostModel(NativeModel):
    """An XGBoost booster trained with ``objective=binary:logistic``.

    ``predict_logit`` uses ``Booster.inplace_predict`` on the numpy matrix: no DMatrix is built. Margins come out
    in float32 and are widened to float64 before the sigmoid, so probabilities near 1 keep their log-odds.
    ``contributions`` needs a DMatrix (``pred_contribs`` is not offered in place) and runs exact TreeSHAP:
    cost O(trees × leaves × depth²) per row. With ``fast`` (the default) both make XGBoost's own C calls directly
    when they can (`fraud.compat.xgboost.DirectCalls`: same calls, same results, a fraction of the per-call
    overhead on small batches); without it only the public API is used.
    """

    family: Family = "xgboost"

    def __init__(
        self,
        booster: xgb.Booster,
        feature_names: Sequence[str],
        reference: np.ndarray,
        params: Mapping[str, Any] | None = None,
        *,
        nthread: int = 1,
        fast: bool = True,
    ) -> None:
        super().__init__(feature_names, reference, params or {})
        self._booster = booster
        self._nthread = nthread
        booster.set_param({"nthread": nthread})
        if booster.num_features() != self.n_features:
            raise ValueError(f"booster has {booster.num_features()} features, expected {self.n_features}")
        self._direct = self._checked_direct_calls() if fast else None

    def _checked_direct_calls(self) -> DirectCalls | None:
        """The direct calls, if they give bitwise the public API's answers on a probe matrix (NaNs included)."""
        probe = np.random.default_rng(0).normal(0.0, 3.0, size=(64, self.n_features)).astype(np.float32)
        probe[::5, 0] = np.nan
        probe[1::7, -1] = np.nan
        from fraud.compat.xgboost import DirectCalls

        try:
            direct = DirectCalls(self._booster, self._nthread)
            same = np.array_equal(direct.margin(probe), self._public_margin(probe)) and np.array_equal(
                direct.contributions(probe).reshape(probe.shape[0], -1), self._public_contributions(probe)
            )
        except Exception as exc:  # XGBoost's internals moved: the public API is always right
            logger.warning("XGBoost direct prediction calls unavailable (%s); using the public API", exc)
            return None
        if not same:
            logger.warning("XGBoost direct prediction calls disagree with the public API; using the public API")
            return None
        return direct

    @property
    def estimator(self) -> xgb.Booster:
        return self._booster

    @property
    def n_trees(self) -> int:
        return int(self._booster.num_boosted_rounds())

    def _public_margin(self, X: np.ndarray) -> np.ndarray:
        margin = self._booster.inplace_predict(X, predict_type="margin", validate_features=False)
        return np.asarray(margin, dtype=np.float64).reshape(-1)

    def _public_contributions(self, X: np.ndarray) -> np.ndarray:
        import xgboost as xgb

        matrix = xgb.DMatrix(X, feature_names=list(self.feature_names), nthread=self._nthread)
        contribs = self._booster.predict(matrix, pred_contribs=True, validate_features=False)
        return np.asarray(contribs, dtype=np.float64)

    def predict_logit(self, X: np.ndarray) -> np.ndarray:
        X = self._check(X)
        if self._direct is not None and self._direct.accepts(X):
            return self._direct.margin(X)
        return self._public_margin(X)

    def contributions(self, X: np.ndarray) -> np.ndarray:
        X = self._check(X)
        if self._direct is not None and self._direct.accepts(X):
            contribs = self._direct.contributions(X)
        else:
            contribs = self._public_contributions(X)
        return contribs.reshape(X.shape[0], self.n_features + 1)


# --------------------------------------------------------------------------------------------------- training


def search_space(suggest: Suggest, max_rounds: int) -> dict[str, Any]:
    """Shallow-to-medium trees, log-scaled learning rate and regularisation, row/column subsampling, and a
    positive-class weight up to 100 (the fraud rate is ~0.1%, so "balanced" would be ~800: too extreme for AP)."""
    rounds = max(50, max_rounds // 50 * 50)
    return {
        "max_depth": suggest.integer("max_depth", 3, 10),
        "learning_rate": suggest.real("learning_rate", 0.01, 0.3, log=True),
        "n_estimators": suggest.integer("n_estimators", 50, rounds, step=50),
        "min_child_weight": suggest.real("min_child_weight", 0.5, 50.0, log=True),
        "subsample": suggest.real("subsample", 0.5, 1.0),
        "colsample_bytree": suggest.real("colsample_bytree", 0.5, 1.0),
        "reg_lambda": suggest.real("reg_lambda", 1e-3, 30.0, log=True),
        "scale_pos_weight": suggest.real("scale_pos_weight", 1.0, 100.0, log=True),
    }


def train_params(params: Mapping[str, Any], *, seed: int, n_jobs: int) -> dict[str, Any]:
    return {
        "objective": "binary:logistic",
        "tree_method": "hist",
        "max_bin": MAX_BIN,
        "nthread": n_jobs,
        "seed": seed,
        "verbosity": 0,
        "max_depth": int(params["max_depth"]),
        "eta": float(params["learning_rate"]),
        "min_child_weight": float(params["min_child_weight"]),
        "subsample": float(params["subsample"]),
        "colsample_bytree": float(params["colsample_bytree"]),
        "lambda": float(params["reg_lambda"]),
        "scale_pos_weight": float(params["scale_pos_weight"]),
    }


def fit(params: Mapping[str, Any], data: FitData) -> NativeModel:
    """Exactly ``n_estimators`` rounds with fixed parameters."""
    import xgboost as xgb

    dtrain = xgb.QuantileDMatrix(data.X, label=data.y, weight=data.weight, max_bin=MAX_BIN, nthread=data.n_jobs)
    rounds = int(params["n_estimators"])
    booster = xgb.train(train_params(params, seed=data.seed, n_jobs=data.n_jobs), dtrain, num_boost_round=rounds)
    return XGBoostModel(booster, data.feature_names, data.reference, recorded(params), nthread=data.n_jobs)


def _matrices(context: TrainingContext) -> tuple[xgb.QuantileDMatrix, xgb.DMatrix]:
    """The tuning set and the monitor sample as XGBoost matrices, built once per study."""
    if "xgboost" not in context.cache:
        import xgboost as xgb

        n_jobs = context.n_jobs
        dtrain = xgb.QuantileDMatrix(context.X, label=context.y, weight=context.weight, max_bin=MAX_BIN, nthread=n_jobs)
        # base_margin 0: predictions over a range of trees are then the trees' sum alone, so the monitor's
        # margin can be accumulated stage by stage (a constant offset does not change AP).
        monitor = context.monitor_rows
        dmonitor = xgb.DMatrix(monitor, base_margin=np.zeros(monitor.shape[0]), nthread=n_jobs)
        context.cache["xgboost"] = (dtrain, dmonitor)
    matrices: tuple[xgb.QuantileDMatrix, xgb.DMatrix] = context.cache["xgboost"]
    return matrices


def train(context: TrainingContext, params: dict[str, Any], reporter: Reporter) -> Outcome:
    import xgboost as xgb

    """Grow up to ``n_estimators`` rounds; report every ``report_every``; stop after ``patience`` reports without
    improvement; keep the booster sliced to its best report."""
    dtrain, dmonitor = _matrices(context)
    total = int(params["n_estimators"])

    class Monitor(xgb.callback.TrainingCallback):
        def __init__(self) -> None:
            super().__init__()
            self.margin = np.zeros(dmonitor.num_row(), dtype=np.float64)
            self.done = 0
            self.best = (-math.inf, 0)
            self.early = False

        def after_iteration(self, model: xgb.Booster, epoch: int, evals_log: Any) -> bool:
            reporter.check_deadline()
            rounds = epoch + 1
            if rounds % context.report_every and rounds != total:
                return False
            self.margin += model.predict(dmonitor, output_margin=True, iteration_range=(self.done, rounds))
            self.done = rounds
            ap = context.monitor_ap(self.margin)
            if ap > self.best[0]:
                self.best = (ap, rounds)
            reporter.report(rounds, ap)
            if rounds - self.best[1] >= context.patience * context.report_every:
                self.early = True
                return True
            return False

    monitor = Monitor()
    booster = xgb.train(
        train_params(params, seed=context.seed, n_jobs=context.n_jobs),
        dtrain,
        num_boost_round=total,
        callbacks=[monitor],
        verbose_eval=False,
    )
    best_rounds = monitor.best[1] or booster.num_boosted_rounds()
    if best_rounds < booster.num_boosted_rounds():
        booster = booster[:best_rounds]
    fitted = {**params, "n_estimators": best_rounds, "n_estimators_searched": total}
    model = XGBoostModel(booster, context.feature_names, context.reference, fitted, nthread=context.n_jobs)
    return Outcome(model, context.final_ap(model), fitted, "early_stopping" if monitor.early else None)


def save(model: NativeModel, path: Path) -> None:
    """XGBoost's JSON model format: portable across XGBoost versions, no code execution on load."""
    model.estimator.save_model(str(path))


def load(stored: StoredModel) -> NativeModel:
    import xgboost as xgb

    booster = xgb.Booster(model_file=str(stored.path))
    return XGBoostModel(
        booster, stored.feature_names, stored.reference, stored.params, nthread=stored.nthread, fast=stored.fast
    )


FAMILY: Final = ModelFamily(
    name="xgboost",
    model_file="model.json",
    libraries=("xgboost", "xgboost-cpu"),
    search_space=search_space,
    fit=fit,
    train=train,
    save=save,
    load=load,
)
