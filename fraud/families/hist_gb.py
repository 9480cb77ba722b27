"""The ``hist_gb`` family: scikit-learn's ``HistGradientBoostingClassifier`` (binary, numeric features).

Its trees are compiled into flat arrays and small batches are scored by a vectorised numpy walk (sklearn's own
``predict_proba`` calls one Cython function per tree and costs ~1 ms per row for a few hundred trees); large
batches go through sklearn. Both give bitwise the same log-odds. Contributions: occlusion against the training
medians (`HistGBModel.contributions`). Trials grow ``max_iter`` with ``warm_start`` in doubling stages.
"""

from __future__ import annotations

import copy
import math
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
    from sklearn.ensemble import HistGradientBoostingClassifier

    from fraud.families.base import Family, Reporter, StoredModel, Suggest, TrainingContext

HIST_GB_FLAT_MAX_ROWS: Final = 64
"""Up to this many rows, hist_gb is scored by the flat numpy tree walk; above it by sklearn's Cython predictor.

Measured on the 2-core build machine with 300 trees of depth up to 19: the numpy walk costs ~0.1–0.2 ms on one
row and grows ~60 µs per row, sklearn ~1.7 ms + ~12 µs per row (one Python call per tree, one thread), so they
cross near 64 rows.
"""


class _FlatForest:
    """The trees of a fitted ``HistGradientBoostingClassifier`` as flat arrays, walked level by level in numpy.

    Leaves point to themselves, so every (row, tree) pair advances in lock-step for ``depth`` levels with no
    masking. The comparisons are sklearn's own (float64 ``x <= threshold``; NaN follows ``missing_go_to_left``)
    and the leaf values are accumulated tree by tree from the baseline with a sequential cumulative sum, the same
    order sklearn adds them in, so the log-odds are bitwise equal to ``decision_function``.
    """

    def __init__(self, estimator: HistGradientBoostingClassifier) -> None:
        from fraud.compat import sklearn as sklearn_compat

        nodes_list = sklearn_compat.tree_nodes(estimator)
        if any(bool(nodes["is_categorical"].any()) for nodes in nodes_list):
            raise ValueError("hist_gb models with categorical splits are not supported by the fast path")
        sizes = np.asarray([len(nodes) for nodes in nodes_list], dtype=np.intp)
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
        if nodes_list:
            nodes = np.concatenate(nodes_list)
            owner_offset = np.repeat(offsets, sizes)
        else:
            nodes = np.zeros(0, dtype=[("is_leaf", np.uint8)])
            owner_offset = np.zeros(0, dtype=np.intp)
        own = np.arange(len(nodes), dtype=np.intp)
        is_leaf = nodes["is_leaf"].astype(bool) if len(nodes) else np.zeros(0, dtype=bool)
        if len(nodes):
            left = np.where(is_leaf, own, nodes["left"].astype(np.intp) + owner_offset)
            right = np.where(is_leaf, own, nodes["right"].astype(np.intp) + owner_offset)
            self.feature = np.where(is_leaf, 0, nodes["feature_idx"]).astype(np.intp)
            self.threshold = np.where(is_leaf, np.inf, nodes["num_threshold"]).astype(np.float64)
            self.missing_left = nodes["missing_go_to_left"].astype(bool)
            self.value = np.where(is_leaf, nodes["value"], 0.0).astype(np.float64)
            self.depth = int(nodes["depth"][is_leaf].max())
        else:
            left = right = own
            self.feature = own
            self.threshold = np.zeros(0)
            self.missing_left = np.zeros(0, dtype=bool)
            self.value = np.zeros(0)
            self.depth = 0
        self.left = left
        self.right = right
        self.roots = offsets
        self.is_leaf = is_leaf
        self.baseline = sklearn_compat.baseline(estimator)

    def raw(self, X: np.ndarray) -> np.ndarray:
        X64 = np.asarray(X, dtype=np.float64)
        n = X64.shape[0]
        node = np.broadcast_to(self.roots, (n, self.roots.shape[0])).copy()
        rows = np.arange(n)[:, np.newaxis]
        has_nan = bool(np.isnan(X64).any())
        for level in range(self.depth):
            if level >= 4 and bool(self.is_leaf[node].all()):
                break
            x = X64[rows, self.feature[node]]
            go_left = x <= self.threshold[node]
            if has_nan:
                go_left = np.where(np.isnan(x), self.missing_left[node], go_left)
            node = np.where(go_left, self.left[node], self.right[node])
        terms = np.empty((n, self.roots.shape[0] + 1), dtype=np.float64)
        terms[:, 0] = self.baseline
        terms[:, 1:] = self.value[node]
        return np.asarray(np.cumsum(terms, axis=1)[:, -1], dtype=np.float64)


class HistGBModel(NativeModel):
    """A scikit-learn ``HistGradientBoostingClassifier`` (binary, numeric features).

    Small batches (≤ `HIST_GB_FLAT_MAX_ROWS`) are scored by the flat numpy walk of `_FlatForest`, larger ones by
    sklearn's ``decision_function``; the two agree bitwise, so the path taken never changes a score. Without
    ``fast`` every batch goes through sklearn (no flat walk, which reads the estimator's private trees).
    """

    family: Family = "hist_gb"

    def __init__(
        self,
        estimator: HistGradientBoostingClassifier,
        feature_names: Sequence[str],
        reference: np.ndarray,
        params: Mapping[str, Any] | None = None,
        *,
        n_threads: int = 1,
        fast: bool = True,
    ) -> None:
        super().__init__(feature_names, reference, params or {})
        self.n_threads = n_threads
        if int(estimator.n_features_in_) != self.n_features:
            raise ValueError(f"estimator has {estimator.n_features_in_} features, expected {self.n_features}")
        self._estimator = estimator
        self._forest = _FlatForest(estimator) if fast else None
        self.base_logit = float(self._raw(self.reference[np.newaxis, :])[0])
        """Log-odds of the reference row (training medians): the bias column of `contributions`."""

    @property
    def estimator(self) -> HistGradientBoostingClassifier:
        return self._estimator

    @property
    def n_trees(self) -> int:
        return int(self._estimator.n_iter_)

    def _raw(self, X: np.ndarray) -> np.ndarray:
        if self._forest is not None and X.shape[0] <= HIST_GB_FLAT_MAX_ROWS:
            return self._forest.raw(X)
        if self._forest is None:
            return np.asarray(self._estimator.decision_function(X), dtype=np.float64).reshape(-1)
        # decision_function with an explicit thread count (sklearn's default takes every core, which stalls under
        # load when the predictor already runs one request per core)
        from fraud.compat import sklearn as sklearn_compat

        return sklearn_compat.raw_predict(self._estimator, X, self.n_threads)

    def predict_logit(self, X: np.ndarray) -> np.ndarray:
        return self._raw(self._check(X))

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Occlusion contributions against the training medians, adjusted to add up exactly.

        For row x with log-odds L(x) and the reference row r (per-feature training medians, log-odds L(r)):

        1. raw effect of feature j: d_j = L(x) − L(x with x_j replaced by r_j);
        2. the d_j need not add up to the total T = L(x) − L(r) (interactions), so the residual T − Σd is
           shared out in proportion to |d_j|: c_j = d_j + (T − Σd)·|d_j| / Σ|d|. A feature equal to its median
           keeps exactly 0; when every d_j is 0 (a pure interaction) T is split evenly among the features that
           differ from the reference;
        3. bias column = L(r); so Σ_j c_j + L(r) = L(x).

        Cost per row: k + 1 model evaluations (the row and its k occluded copies), done as one batched call,
        plus O(k) numpy work: about (k + 1)× the cost of ``predict_logit``.
        """
        X = self._check(X)
        n, k = X.shape
        X64 = np.asarray(X, dtype=np.float64)
        stacked = np.repeat(X64[:, np.newaxis, :], k + 1, axis=1)  # (n, k+1, k); slot 0 = the row itself
        diag = np.arange(k)
        stacked[:, diag + 1, diag] = self.reference[np.newaxis, :]
        logits = self._raw(stacked.reshape(n * (k + 1), k)).reshape(n, k + 1)
        full = logits[:, 0]
        d = full[:, np.newaxis] - logits[:, 1:]
        total = full - self.base_logit
        residual = total - d.sum(axis=1)
        magnitude = np.abs(d)
        mass = magnitude.sum(axis=1)
        out = np.empty((n, k + 1), dtype=np.float64)
        safe_mass = np.where(mass > 0, mass, 1.0)
        out[:, :k] = d + residual[:, np.newaxis] * magnitude / safe_mass[:, np.newaxis]
        flat = mass == 0
        if flat.any():
            differs = X64[flat] != self.reference[np.newaxis, :]
            count = np.maximum(differs.sum(axis=1), 1)
            out[flat, :k] = differs * (total[flat] / count)[:, np.newaxis]
        out[:, k] = self.base_logit
        return out


# --------------------------------------------------------------------------------------------------- training


def search_space(suggest: Suggest, max_rounds: int) -> dict[str, Any]:
    """Up to ``min(800, max_rounds)`` trees, log-scaled learning rate, leaves and regularisation, and a positive-
    class weight up to 100."""
    rounds = max(50, min(800, max_rounds) // 50 * 50)
    return {
        "learning_rate": suggest.real("learning_rate", 0.01, 0.3, log=True),
        "max_iter": suggest.integer("max_iter", 50, rounds, step=50),
        "max_leaf_nodes": suggest.integer("max_leaf_nodes", 8, 128, log=True),
        "min_samples_leaf": suggest.integer("min_samples_leaf", 10, 500, log=True),
        "l2_regularization": suggest.real("l2_regularization", 1e-4, 10.0, log=True),
        "pos_weight": suggest.real("pos_weight", 1.0, 100.0, log=True),
    }


def _estimator(
    params: Mapping[str, Any], *, max_iter: int, seed: int, warm_start: bool
) -> HistGradientBoostingClassifier:
    from fraud.compat.sklearn import UnweightedBinningHGB  # bins on unweighted quantiles: see its docstring

    return UnweightedBinningHGB(
        learning_rate=float(params["learning_rate"]),
        max_iter=max_iter,
        max_leaf_nodes=int(params["max_leaf_nodes"]),
        min_samples_leaf=int(params["min_samples_leaf"]),
        l2_regularization=float(params["l2_regularization"]),
        class_weight={0: 1.0, 1: float(params["pos_weight"])},
        early_stopping=False,
        warm_start=warm_start,
        random_state=seed,
    )


def fit(params: Mapping[str, Any], data: FitData) -> NativeModel:
    """Exactly ``max_iter`` trees with fixed parameters."""
    estimator = _estimator(params, max_iter=int(params["max_iter"]), seed=data.seed, warm_start=False)
    with threads(data.n_jobs):
        estimator.fit(data.X, data.y, sample_weight=data.weight)
    from fraud.compat.sklearn import as_stock

    return HistGBModel(as_stock(estimator), data.feature_names, data.reference, recorded(params), n_threads=data.n_jobs)


def _stages(first: int, total: int) -> list[int]:
    """Stage ends for warm-started hist_gb: ``first``, doubling, then ``total`` (25, 50, 100, 200, …, total).

    A warm start re-bins the data and re-scores the training rows with every tree so far, so its overhead grows
    with the number of stages; doubling keeps it near one extra pass over the trees, and the steps stay
    multiples of ``report_every`` that XGBoost trials also report at, so the pruner can compare them.
    """
    ends = []
    end = first
    while end < total:
        ends.append(end)
        end *= 2
    ends.append(total)
    return ends


def train(context: TrainingContext, params: dict[str, Any], reporter: Reporter) -> Outcome:
    """Grow ``max_iter`` trees in doubling warm-started stages; report after each; stop after ``patience``
    reports without improvement; keep a copy of the estimator at its best stage."""
    from fraud.compat.sklearn import add_tree_values, as_stock

    total = int(params["max_iter"])
    estimator = _estimator(params, max_iter=min(context.report_every, total), seed=context.seed, warm_start=True)
    raw = np.zeros(context.monitor_rows64.shape[0], dtype=np.float64)
    best: tuple[float, int, HistGradientBoostingClassifier | None] = (-math.inf, 0, None)
    done = 0
    early = False
    with threads(context.n_jobs):
        for stage_end in _stages(context.report_every, total):
            reporter.check_deadline()
            estimator.set_params(max_iter=stage_end)
            estimator.fit(context.X, context.y, sample_weight=context.weight)
            # Only the trees added by this stage are scored on the monitor rows (sklearn's per-tree
            # predictor, the same one decision_function loops over).
            add_tree_values(estimator, context.monitor_rows64, done, stage_end, context.n_jobs, raw)
            done = stage_end
            ap = context.monitor_ap(raw)
            if ap > best[0]:
                best = (ap, stage_end, copy.deepcopy(estimator))
            reporter.report(stage_end, ap)
            if stage_end - best[1] >= context.patience * context.report_every:
                early = True
                break
    kept = as_stock(best[2] if best[2] is not None else estimator)
    fitted = {**params, "max_iter": int(kept.n_iter_), "max_iter_searched": total}
    model = HistGBModel(kept, context.feature_names, context.reference, fitted, n_threads=context.n_jobs)
    return Outcome(model, context.final_ap(model), fitted, "early_stopping" if early else None)


def load(stored: StoredModel) -> NativeModel:
    estimator = load_pickled(stored.path)
    return HistGBModel(
        estimator, stored.feature_names, stored.reference, stored.params, n_threads=stored.nthread, fast=stored.fast
    )


FAMILY: Final = ModelFamily(
    name="hist_gb",
    model_file="model.joblib",
    libraries=("scikit-learn",),
    search_space=search_space,
    fit=fit,
    train=train,
    save=save_pickled,
    load=load,
)
