"""The predictor's XGBoost calls: XGBoost's own C calls made directly, bitwise the public API's answers."""

from __future__ import annotations

import numpy as np
import pytest

from fraud.modeling import XGBoostModel

FEATURES = ("hour", "night", "type_TRANSFER", "amount", "log_amount")


@pytest.fixture(scope="module")
def model() -> XGBoostModel:
    import xgboost as xgb

    rng = np.random.default_rng(3)
    X = rng.normal(size=(2000, len(FEATURES))).astype(np.float32)
    X[::13, 1] = np.nan
    y = ((X[:, 0] + 0.5 * X[:, 3] + rng.normal(0, 0.5, 2000)) > 1.2).astype(np.float32)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 5, "eta": 0.3, "nthread": 1},
        xgb.DMatrix(X, label=y),
        num_boost_round=40,
    )
    return XGBoostModel(booster, FEATURES, np.zeros(len(FEATURES)))


def test_direct_calls_are_bitwise_the_public_api(model: XGBoostModel) -> None:
    import xgboost as xgb

    assert model._direct is not None, "the direct C calls pass their load-time check"
    rows = np.random.default_rng(4).normal(0, 2, size=(300, len(FEATURES))).astype(np.float32)
    rows[::11, 0] = np.nan  # missing values take the trees' default branches
    booster = model.estimator
    margin = np.asarray(booster.inplace_predict(rows, predict_type="margin"), dtype=np.float64)
    contributions = booster.predict(xgb.DMatrix(rows, nthread=1), pred_contribs=True)

    np.testing.assert_array_equal(model.predict_logit(rows), margin)
    np.testing.assert_array_equal(model.contributions(rows), contributions)
    for i in (0, 11, 299):  # one row, as a single transaction is scored
        np.testing.assert_array_equal(model.predict_logit(rows[i : i + 1]), margin[i : i + 1])
        np.testing.assert_array_equal(model.contributions(rows[i : i + 1]), contributions[i : i + 1])


def test_other_inputs_take_the_public_api_with_the_same_answers(model: XGBoostModel) -> None:
    rows = np.random.default_rng(5).normal(0, 2, size=(60, len(FEATURES))).astype(np.float32)
    expected = model.predict_logit(rows)
    np.testing.assert_array_equal(model.predict_logit(rows[::2]), expected[::2])  # not contiguous
    np.testing.assert_array_equal(model.predict_logit(rows.astype(np.float64)), expected)  # float64 input
    np.testing.assert_array_equal(model.contributions(rows[::2]), model.contributions(rows)[::2])
