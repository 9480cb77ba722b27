"""scikit-learn's private symbols: the fitted trees of ``HistGradientBoostingClassifier`` and its binning hook.

Three uses, each for a reason:

- the predictor scores small hist_gb batches with a flat numpy walk of the fitted trees
  (`fraud.modeling.HistGBModel`): sklearn's ``predict_proba`` calls one Cython function per tree, ~1 ms per row
  for a few hundred trees. That reads the per-iteration tree predictors, their node records and the baseline;
  larger batches go through ``_raw_predict`` (``decision_function`` with an explicit thread count, because the
  public method takes every core);
- the tuner scores only the trees a warm-started fit just added (the per-tree ``predict`` with the binner's
  known-category bitsets), instead of the whole ensemble at every stage;
- the tuner bins on unweighted quantiles (`UnweightedBinningHGB` overrides ``_bin_data``): sklearn 1.9 computes
  weighted bin edges with one ``_weighted_percentile`` call per bin and feature, 7.5 s per fit at 150k rows.

Imported only where a hist_gb model is built or loaded. Written for scikit-learn 1.9.1; ``SYMBOLS`` lists what
this relies on (checked by ``tests/compat``).
"""

from __future__ import annotations

import inspect
from typing import Any, Final

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier

from fraud.compat import PrivateSymbol, expect

DISTRIBUTIONS: Final = ("scikit-learn",)
WRITTEN_FOR: Final = "1.9.1"
NODE_FIELDS: Final = (
    "value",
    "feature_idx",
    "num_threshold",
    "missing_go_to_left",
    "left",
    "right",
    "depth",
    "is_leaf",
    "is_categorical",
)
"""The fields of a tree predictor's node records that the flat walk reads."""


def tree_nodes(estimator: HistGradientBoostingClassifier) -> list[np.ndarray]:
    """The node records (structured arrays with `NODE_FIELDS`) of each tree of a fitted binary classifier.

    Raises:
        ValueError: the model is not binary (more than one tree per iteration).
    """
    predictors = estimator._predictors
    if any(len(per_iter) != 1 for per_iter in predictors):
        raise ValueError("hist_gb must be a binary classifier (one tree per iteration)")
    return [per_iter[0].nodes for per_iter in predictors]


def baseline(estimator: HistGradientBoostingClassifier) -> float:
    """The log-odds every tree's values are added to (the fitted intercept)."""
    return float(np.asarray(estimator._baseline_prediction).reshape(-1)[0])


def raw_predict(estimator: HistGradientBoostingClassifier, X: np.ndarray, n_threads: int) -> np.ndarray:
    """``decision_function`` (log-odds, 1-D float64) with an explicit thread count."""
    return np.asarray(estimator._raw_predict(X, n_threads=n_threads), dtype=np.float64).reshape(-1)


def add_tree_values(
    estimator: HistGradientBoostingClassifier, X64: np.ndarray, start: int, stop: int, n_threads: int, out: np.ndarray
) -> None:
    """Add the raw values of trees ``start:stop`` on float64 rows to ``out``, tree by tree as sklearn adds them."""
    known_cats, f_idx_map = estimator._bin_mapper.make_known_categories_bitsets()
    for per_iter in estimator._predictors[start:stop]:
        out += per_iter[0].predict(X64, known_cats, f_idx_map, n_threads)


class UnweightedBinningHGB(HistGradientBoostingClassifier):  # type: ignore[misc]
    """``HistGradientBoostingClassifier`` that bins features on unweighted quantiles during fit.

    Bin edges are only a discretisation of each feature (above 200k rows sklearn itself bins a weighted
    *resample* without weights), so the tuning rows are binned as they are; gradients and leaf values still use
    every weight. Only fitting differs: `as_stock` turns a fitted instance back into the stock class (same
    state), so saved models unpickle without this module.
    """

    def _bin_data(self, X: Any, sample_weight: Any, is_training_data: bool) -> Any:
        return super()._bin_data(X, None, is_training_data)


def as_stock(estimator: HistGradientBoostingClassifier) -> HistGradientBoostingClassifier:
    """The same fitted state as a plain ``HistGradientBoostingClassifier``, so saved models unpickle anywhere."""
    estimator.__class__ = HistGradientBoostingClassifier
    return estimator


# ------------------------------------------------------------------------------------------------ contract


def _fitted() -> HistGradientBoostingClassifier:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    X[::7, 1] = np.nan
    y = (X[:, 0] + rng.normal(0, 0.5, 200) > 0).astype(int)
    return HistGradientBoostingClassifier(max_iter=5, max_leaf_nodes=4, random_state=0).fit(X, y)


def _check_predictors() -> None:
    model = _fitted()
    nodes = tree_nodes(model)
    expect(len(nodes) == model.n_iter_, f"{len(nodes)} trees for {model.n_iter_} iterations")
    names = nodes[0].dtype.names or ()
    missing = [field for field in NODE_FIELDS if field not in names]
    expect(not missing, f"node records lack {', '.join(missing)} (fields: {', '.join(names)})")


def _check_baseline() -> None:
    model = _fitted()
    X = np.zeros((1, 3))
    expect(np.ndim(model._baseline_prediction) in (1, 2), "_baseline_prediction is not an array")
    raw = np.full(1, baseline(model))
    add_tree_values(model, X, 0, model.n_iter_, 1, raw)
    expect(
        bool(np.isclose(raw[0], model.decision_function(X)[0])),
        "baseline + the trees' values is not decision_function",
    )


def _check_raw_predict() -> None:
    model = _fitted()
    X = np.random.default_rng(1).normal(size=(20, 3))
    expect(np.array_equal(raw_predict(model, X, 1), model.decision_function(X)), "_raw_predict != decision_function")


def _check_tree_predict() -> None:
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor

    params = list(inspect.signature(TreePredictor.predict).parameters)
    expect(params == ["self", "X", "known_cat_bitsets", "f_idx_map", "n_threads"], f"predict{tuple(params[1:])}")
    model = _fitted()
    known_cats, f_idx_map = model._bin_mapper.make_known_categories_bitsets()
    expect(known_cats.ndim == 2 and f_idx_map.ndim == 1, "make_known_categories_bitsets() changed its arrays")


def _check_bin_data() -> None:
    params = list(inspect.signature(HistGradientBoostingClassifier._bin_data).parameters)
    expect(params == ["self", "X", "sample_weight", "is_training_data"], f"_bin_data{tuple(params[1:])}")
    seen: list[Any] = []
    stock = HistGradientBoostingClassifier._bin_data

    def spy(self: Any, X: Any, sample_weight: Any, is_training_data: bool) -> Any:
        seen.append(sample_weight)
        return stock(self, X, sample_weight, is_training_data)

    X = np.random.default_rng(2).normal(size=(100, 2))
    y = (X[:, 0] > 0).astype(int)
    own = "_bin_data" in HistGradientBoostingClassifier.__dict__
    HistGradientBoostingClassifier._bin_data = spy
    try:
        UnweightedBinningHGB(max_iter=2).fit(X, y, sample_weight=np.full(100, 2.0))
    finally:
        if own:
            HistGradientBoostingClassifier._bin_data = stock
        else:
            del HistGradientBoostingClassifier._bin_data
    expect(bool(seen), "fit no longer bins through _bin_data")
    expect(all(weight is None for weight in seen), "the override no longer reaches _bin_data with its weights")


SYMBOLS: Final = tuple(
    PrivateSymbol(DISTRIBUTIONS, WRITTEN_FOR, name, used_by, check)
    for name, used_by, check in (
        (
            "HistGradientBoostingClassifier._predictors (and TreePredictor.nodes)",
            "fraud.modeling.HistGBModel's flat tree walk",
            _check_predictors,
        ),
        (
            "HistGradientBoostingClassifier._baseline_prediction",
            "fraud.modeling.HistGBModel's flat tree walk",
            _check_baseline,
        ),
        ("HistGradientBoostingClassifier._raw_predict", "fraud.modeling.HistGBModel", _check_raw_predict),
        (
            "TreePredictor.predict and HistGradientBoostingClassifier._bin_mapper.make_known_categories_bitsets",
            "fraud.tuning (hist_gb stages)",
            _check_tree_predict,
        ),
        ("HistGradientBoostingClassifier._bin_data", "fraud.tuning (unweighted binning)", _check_bin_data),
    )
)
