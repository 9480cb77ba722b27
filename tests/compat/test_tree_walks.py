"""The fast paths that re-implement library work agree bitwise with the library on randomly generated models.

`fraud.modeling` scores hist_gb by its own flat walk of sklearn's fitted trees and XGBoost by calling its C
library directly (`fraud.compat`); both must equal what the library answers, on any model the tuner may
produce. Hypothesis draws the dataset (rows, features, missing values, label noise, weights), the model's shape
(trees, depth, leaves, learning rate) and the rows scored (inside and outside the training range, NaNs).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraud.compat.sklearn import UnweightedBinningHGB, as_stock
from fraud.modeling import HIST_GB_FLAT_MAX_ROWS, HistGBModel, XGBoostModel

EXAMPLES = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _data(seed: int, rows: int, features: int, missing: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A training set with a learnable, noisy label, NaNs, and rows to score that go past its range."""
    rng = np.random.default_rng(seed)
    X = (rng.normal(0, 1, (rows, features)) * rng.uniform(0.1, 1e4, features)).astype(np.float32)
    X[rng.random((rows, features)) < missing] = np.nan
    signal = np.nan_to_num(X[:, 0]) / (np.nanstd(X[:, 0]) or 1.0) + rng.normal(0, 1, rows)
    y = (signal > np.quantile(signal, 0.8)).astype(np.int32)
    y[:2] = (0, 1)  # both classes, always
    score = (X[rng.integers(0, rows, 200)] * rng.uniform(0.5, 3.0, (200, features))).astype(np.float32)
    score[rng.random((200, features)) < missing + 0.05] = np.nan
    score[0] = np.nan
    return X, y, score


shapes = st.fixed_dictionaries(
    {
        "seed": st.integers(0, 2**32 - 1),
        "rows": st.integers(40, 400),
        "features": st.integers(1, 8),
        "missing": st.sampled_from([0.0, 0.05, 0.3]),
    }
)


@EXAMPLES
@given(
    data=shapes,
    trees=st.integers(1, 30),
    leaves=st.integers(2, 48),
    depth=st.one_of(st.none(), st.integers(1, 10)),
    learning_rate=st.floats(0.01, 1.0),
    weighted=st.booleans(),
)
def test_hist_gb_flat_walk_is_sklearn_bitwise(
    data: dict[str, Any], trees: int, leaves: int, depth: int | None, learning_rate: float, weighted: bool
) -> None:
    X, y, score = _data(**data)
    estimator = UnweightedBinningHGB(
        max_iter=trees,
        max_leaf_nodes=leaves,
        max_depth=depth,
        learning_rate=learning_rate,
        min_samples_leaf=2,
        early_stopping=False,
        random_state=data["seed"] % 1000,
    )
    weights = np.where(y == 1, 5.0, 1.0) if weighted else None  # as the tuner fits: weighted, unweighted bins
    model = HistGBModel(
        as_stock(estimator.fit(X, y, sample_weight=weights)),
        [f"f{i}" for i in range(X.shape[1])],
        np.nanmedian(X, axis=0).astype(np.float64) if not np.isnan(X).all() else np.zeros(X.shape[1]),
    )
    expected = estimator.decision_function(score)
    small = score[:HIST_GB_FLAT_MAX_ROWS]
    np.testing.assert_array_equal(model.predict_logit(small), expected[: len(small)])  # the flat walk
    np.testing.assert_array_equal(model.predict_logit(score), expected)  # large batch: sklearn's own
    for i in (0, 1, 7):  # one row at a time, as single transactions are scored
        np.testing.assert_array_equal(model.predict_logit(score[i : i + 1]), expected[i : i + 1])


@EXAMPLES
@given(
    data=shapes,
    rounds=st.integers(1, 30),
    depth=st.integers(1, 10),
    eta=st.floats(0.01, 1.0),
    hist=st.booleans(),
)
def test_xgboost_direct_calls_are_the_public_api_bitwise(
    data: dict[str, Any], rounds: int, depth: int, eta: float, hist: bool
) -> None:
    import xgboost as xgb

    X, y, score = _data(**data)
    params = {
        "objective": "binary:logistic",
        "max_depth": depth,
        "eta": eta,
        "nthread": 1,
        "verbosity": 0,
        "seed": data["seed"] % 1000,
        "tree_method": "hist" if hist else "exact",
    }
    booster = xgb.train(params, xgb.DMatrix(X, label=y), num_boost_round=rounds)
    model = XGBoostModel(booster, [f"f{i}" for i in range(X.shape[1])], np.zeros(X.shape[1]))
    assert model._direct is not None, "the direct calls pass their load-time check on this model"
    margin = np.asarray(booster.inplace_predict(score, predict_type="margin"), dtype=np.float64)
    contributions = booster.predict(xgb.DMatrix(score, nthread=1), pred_contribs=True)
    np.testing.assert_array_equal(model.predict_logit(score), margin)
    np.testing.assert_array_equal(model.contributions(score), contributions)
    np.testing.assert_array_equal(model.predict_logit(score[3:4]), margin[3:4])
    np.testing.assert_array_equal(model.contributions(score[3:4]), contributions[3:4])


def test_the_public_only_models_give_the_same_answers() -> None:
    """``fast=False`` (``FRAUD_SERVE_FAST_PATH=0``): no private calls, identical scores."""
    import xgboost as xgb

    X, y, score = _data(seed=5, rows=300, features=4, missing=0.05)
    names = [f"f{i}" for i in range(4)]
    booster = xgb.train({"max_depth": 4, "nthread": 1, "objective": "binary:logistic"}, xgb.DMatrix(X, label=y), 20)
    fast, public = (XGBoostModel(booster, names, np.zeros(4), fast=flag) for flag in (True, False))
    assert fast._direct is not None and public._direct is None
    np.testing.assert_array_equal(fast.predict_logit(score), public.predict_logit(score))
    np.testing.assert_array_equal(fast.contributions(score), public.contributions(score))
    estimator = as_stock(UnweightedBinningHGB(max_iter=20, random_state=0).fit(X, y))
    flat, plain = (HistGBModel(estimator, names, np.zeros(4), fast=flag) for flag in (True, False))
    assert flat._forest is not None and plain._forest is None
    np.testing.assert_array_equal(flat.predict_logit(score[:10]), plain.predict_logit(score[:10]))
    np.testing.assert_array_equal(flat.contributions(score[:10]), plain.contributions(score[:10]))


pytestmark = [
    pytest.mark.slow,  # a few hundred small fits: ~20 s on an idle core
    pytest.mark.filterwarnings("ignore::RuntimeWarning"),  # nanmedian of all-NaN columns
]
