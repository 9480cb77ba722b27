"""The native model families: persistence, explanations and the one-row fast paths, on the genuine PaySim sample."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from scipy.special import expit

from fraud.data.adapters import get_adapter
from fraud.data.readers import validated_batches
from fraud.features import build_features, fit_spec
from fraud.modeling import (
    FAMILIES,
    HIST_GB_FLAT_MAX_ROWS,
    METADATA_FILE,
    HistGBModel,
    LogRegModel,
    NativeModel,
    NativeModelError,
    XGBoostModel,
    load_native,
    save_native,
    top_contributors,
    training_reference,
)
from fraud.tuning import fit_model
from samples import PAYSIM_STEPS1TO9

SAMPLE = PAYSIM_STEPS1TO9

PARAMS: dict[str, dict[str, Any]] = {
    "xgboost": {
        "max_depth": 5,
        "learning_rate": 0.1,
        "n_estimators": 80,
        "min_child_weight": 1.0,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "reg_lambda": 1.0,
        "scale_pos_weight": 5.0,
    },
    "hist_gb": {
        "learning_rate": 0.1,
        "max_iter": 80,
        "max_leaf_nodes": 31,
        "min_samples_leaf": 20,
        "l2_regularization": 0.1,
        "pos_weight": 5.0,
    },
    "logreg": {"C": 1.0, "pos_weight": 5.0},
}


class Sample:
    def __init__(self) -> None:
        table = pa.Table.from_batches(list(validated_batches(SAMPLE, get_adapter("paysim"))))
        train = table.filter(pc.less_equal(table["step"], 7))
        test = table.filter(pc.greater(table["step"], 7))
        self.spec = fit_spec(train, "decision_time")
        self.names = self.spec.names
        self.X = build_features(train, self.spec)
        self.y = train["isFraud"].to_numpy()
        self.X_test = build_features(test, self.spec)
        self.y_test = test["isFraud"].to_numpy()


@pytest.fixture(scope="module")
def sample() -> Sample:
    return Sample()


@pytest.fixture(scope="module")
def models(sample: Sample) -> dict[str, NativeModel]:
    return {
        family: fit_model(family, PARAMS[family], sample.X, sample.y, feature_names=sample.names, n_jobs=1)
        for family in FAMILIES
    }


@pytest.mark.parametrize("family", FAMILIES)
def test_save_load_round_trip_is_identical(
    family: str, models: dict[str, NativeModel], sample: Sample, tmp_path: Path
) -> None:
    model = models[family]
    save_native(model, tmp_path)
    loaded = load_native(tmp_path)

    assert type(loaded) is type(model)
    assert loaded.family == family
    assert loaded.feature_names == sample.names
    np.testing.assert_array_equal(loaded.reference, model.reference)
    np.testing.assert_array_equal(loaded.predict_proba(sample.X_test), model.predict_proba(sample.X_test))
    np.testing.assert_array_equal(loaded.contributions(sample.X_test[:200]), model.contributions(sample.X_test[:200]))

    meta = json.loads((tmp_path / METADATA_FILE).read_text())
    assert meta["family"] == family
    assert meta["feature_names"] == list(sample.names)
    assert len(meta["reference"]["values"]) == len(sample.names)
    assert meta["params"] == json.loads(json.dumps(model.params))
    if family == "xgboost":
        assert "xgboost" in meta["libraries"] or "xgboost-cpu" in meta["libraries"]
        json.loads((tmp_path / "model.json").read_text())  # XGBoost's own JSON format, not a pickle
    else:
        assert "scikit-learn" in meta["libraries"]
        # stock scikit-learn classes only: the file unpickles without the training code
        assert b"fraud" not in (tmp_path / "model.joblib").read_bytes()


@pytest.mark.parametrize("family", FAMILIES)
def test_probabilities_are_1d_float64_in_unit_interval(
    family: str, models: dict[str, NativeModel], sample: Sample
) -> None:
    proba = models[family].predict_proba(sample.X_test)
    assert proba.dtype == np.float64
    assert proba.shape == (sample.X_test.shape[0],)
    assert np.all((proba >= 0) & (proba <= 1))
    # the models learned something: frauds score higher than legitimate rows on the later steps
    assert proba[sample.y_test == 1].mean() > 5 * proba[sample.y_test == 0].mean()


@pytest.mark.parametrize("family", FAMILIES)
def test_one_row_and_batch_give_identical_results(family: str, models: dict[str, NativeModel], sample: Sample) -> None:
    model = models[family]
    rows = sample.X_test[:300]
    batch = model.predict_proba(rows)
    one_by_one = np.concatenate([model.predict_proba(rows[i : i + 1]) for i in range(rows.shape[0])])
    np.testing.assert_array_equal(one_by_one, batch)
    contribs = model.contributions(rows[:40])
    for i in range(40):
        np.testing.assert_array_equal(model.contributions(rows[i : i + 1]), contribs[i : i + 1])


@pytest.mark.parametrize(("family", "atol"), [("xgboost", 1e-4), ("logreg", 1e-12), ("hist_gb", 1e-9)])
def test_contributions_sum_to_the_log_odds(
    family: str, atol: float, models: dict[str, NativeModel], sample: Sample
) -> None:
    model = models[family]
    rows = sample.X_test[:500]
    contribs = model.contributions(rows)
    assert contribs.shape == (500, len(sample.names) + 1)
    assert contribs.dtype == np.float64
    np.testing.assert_allclose(contribs.sum(axis=1), model.predict_logit(rows), rtol=0, atol=atol)
    np.testing.assert_allclose(expit(contribs.sum(axis=1)), model.predict_proba(rows), rtol=1e-4, atol=1e-7)


def test_xgboost_contributions_are_treeshap_and_match_the_booster(
    models: dict[str, NativeModel], sample: Sample
) -> None:
    import xgboost as xgb

    model = models["xgboost"]
    assert isinstance(model, XGBoostModel)
    rows = sample.X_test[:100]
    matrix = xgb.DMatrix(rows, feature_names=list(sample.names))
    np.testing.assert_allclose(model.contributions(rows), model.estimator.predict(matrix, pred_contribs=True))
    np.testing.assert_allclose(model.predict_proba(rows), model.estimator.predict(matrix), rtol=1e-6, atol=1e-7)


def test_logreg_contribution_is_coefficient_times_standardised_deviation(
    models: dict[str, NativeModel], sample: Sample
) -> None:
    model = models["logreg"]
    assert isinstance(model, LogRegModel)
    scaler, clf = model.estimator[0], model.estimator[-1]
    rows = sample.X_test[:50].astype(np.float64)
    expected = clf.coef_[0] * (rows - scaler.mean_) / scaler.scale_
    contribs = model.contributions(rows)
    np.testing.assert_allclose(contribs[:, :-1], expected, rtol=1e-12)
    np.testing.assert_allclose(contribs[:, -1], clf.intercept_[0])
    np.testing.assert_allclose(model.predict_proba(rows), model.estimator.predict_proba(rows)[:, 1], rtol=1e-12)


def test_hist_gb_fast_path_is_bitwise_sklearn(models: dict[str, NativeModel], sample: Sample) -> None:
    model = models["hist_gb"]
    assert isinstance(model, HistGBModel)
    small = sample.X_test[:HIST_GB_FLAT_MAX_ROWS]  # numpy tree walk
    large = sample.X_test[: 4 * HIST_GB_FLAT_MAX_ROWS]  # sklearn's predictor
    np.testing.assert_array_equal(model.predict_proba(small), model.estimator.predict_proba(small)[:, 1])
    np.testing.assert_array_equal(model.predict_proba(large), model.estimator.predict_proba(large)[:, 1])
    np.testing.assert_array_equal(model.predict_logit(small), model.estimator.decision_function(small))
    with_nan = small.copy()
    with_nan[::3, 8] = np.nan  # missing values follow sklearn's learned direction
    np.testing.assert_array_equal(model.predict_proba(with_nan), model.estimator.predict_proba(with_nan)[:, 1])


def test_hist_gb_occlusion_rule(models: dict[str, NativeModel], sample: Sample) -> None:
    model = models["hist_gb"]
    assert isinstance(model, HistGBModel)
    k = len(sample.names)
    reference_row = model.reference[np.newaxis, :]
    base = model.contributions(reference_row)
    np.testing.assert_array_equal(base[0, :k], np.zeros(k))
    assert base[0, k] == pytest.approx(model.predict_logit(reference_row)[0])

    rows = sample.X_test[:300].astype(np.float64)
    contribs = model.contributions(rows)
    at_median = rows == model.reference
    assert at_median.any()
    logits = model.predict_logit(rows)
    raw_effect = np.empty_like(rows)
    for j in range(k):
        occluded = rows.copy()
        occluded[:, j] = model.reference[j]
        raw_effect[:, j] = logits - model.predict_logit(occluded)
    # a feature at its training median gets exactly 0 whenever some feature has an occlusion effect
    has_effect = np.abs(raw_effect).sum(axis=1) > 0
    assert np.all(contribs[:, :k][at_median & has_effect[:, np.newaxis]] == 0)
    # the residual is shared in proportion to |d_j|
    total = logits - model.base_logit
    residual = total - raw_effect.sum(axis=1)
    share = np.abs(raw_effect) / np.where(has_effect, np.abs(raw_effect).sum(axis=1), 1.0)[:, np.newaxis]
    expected = raw_effect + residual[:, np.newaxis] * share
    np.testing.assert_allclose(contribs[has_effect, :k], expected[has_effect], atol=1e-9)


def test_top_contributors_orders_features_by_push_towards_fraud() -> None:
    contribs = np.array([[0.5, -2.0, 1.5, 0.5, -9.0], [-1.0, -0.5, -3.0, 0.0, 4.0]])
    np.testing.assert_array_equal(top_contributors(contribs, k=3), [[2, 0, 3], [3, 1, 0]])
    assert top_contributors(contribs, k=10).shape == (2, 4)


def test_training_reference_is_weighted_median() -> None:
    X = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [4.0, 40.0]])
    np.testing.assert_array_equal(training_reference(X), [2.5, 25.0])
    weights = np.array([1.0, 1.0, 1.0, 10.0])
    np.testing.assert_array_equal(training_reference(X, weights), [4.0, 40.0])


def test_wrong_shape_names_the_features(models: dict[str, NativeModel], sample: Sample) -> None:
    for model in models.values():
        with pytest.raises(ValueError, match=r"shape \(n, 17\).*amount"):
            model.predict_proba(sample.X_test[:3, :5])


def test_load_refuses_what_is_not_a_model(models: dict[str, NativeModel], tmp_path: Path) -> None:
    with pytest.raises(NativeModelError, match=r"native\.json is missing"):
        load_native(tmp_path / "nothing")
    save_native(models["logreg"], tmp_path / "m")
    meta_path = tmp_path / "m" / METADATA_FILE
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "family": "random_forest"}))
    with pytest.raises(NativeModelError, match="unknown family 'random_forest'"):
        load_native(tmp_path / "m")
    meta_path.write_text(json.dumps(meta))
    (tmp_path / "m" / "model.joblib").unlink()
    with pytest.raises(NativeModelError, match=r"no model file model\.joblib"):
        load_native(tmp_path / "m")
    meta_path.write_text("{not json")
    with pytest.raises(NativeModelError, match="cannot read"):
        load_native(tmp_path / "m")


def test_module_imports_no_heavy_library() -> None:
    code = (
        "import sys, fraud.modeling; "
        "heavy = [m for m in ('mlflow', 'optuna', 'pandas', 'xgboost', 'sklearn') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
