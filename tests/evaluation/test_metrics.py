"""Metrics against hand-computed answers, against scikit-learn where it has the same metric, and on ties."""

from __future__ import annotations

import itertools
import json

import numpy as np
import numpy.typing as npt
import pytest
from sklearn import metrics as skm

from fraud.errors import EvaluationError, PipelineError
from fraud.evaluation.metrics import (
    CONFUSION_LABELS,
    METRIC_KEY,
    NEVER,
    at_alert_budget,
    average_precision,
    confusion_at,
    confusion_matrix,
    expected_cost,
    fpr_key,
    operating_curve,
    precision_recall_curve_points,
    precision_recall_f1,
    recall_at_fpr,
    roc_auc,
    roc_curve_points,
)
from fraud.evaluation.scorecard import EvaluationReport, evaluate_block
from fraud.evaluation.thresholds import Thresholds, choose_thresholds

# Ten transactions, ranked by score. Frauds at 0.95, 0.8, 0.5 and 0.2; six legit.
SCORES = np.array([0.95, 0.90, 0.80, 0.70, 0.60, 0.50, 0.40, 0.30, 0.20, 0.10])
LABELS = np.array([1, 0, 1, 0, 0, 1, 0, 0, 1, 0])
AMOUNTS = np.array([1000.0, 50, 300, 20, 10, 40, 30, 60, 5, 70])


def random_block(
    n: int, seed: int, fraud_rate: float = 0.05, decimals: int | None = 2
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int8], npt.NDArray[np.float64]]:
    """Scores with signal; rounded to ``decimals`` so there are many ties."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < fraud_rate).astype(np.int8)
    scores = np.clip(rng.normal(0.3 + 0.25 * y, 0.15), 0.0, 1.0)
    if decimals is not None:
        scores = scores.round(decimals)
    amounts = rng.lognormal(11.0, 1.5, n).round(2)
    return scores, y, amounts


# --- hand-computed ----------------------------------------------------------------------------------------


def test_average_precision_by_hand() -> None:
    # Frauds at ranks 1, 3, 6, 9: AP = (1/1 + 2/3 + 3/6 + 4/9) / 4 = 94/144.
    assert average_precision(SCORES, LABELS) == pytest.approx(94 / 144)


def test_roc_auc_by_hand() -> None:
    # Fraud-over-legit pairs: 6 + 5 + 3 + 1 = 15 of 4 x 6 = 24.
    assert roc_auc(SCORES, LABELS) == pytest.approx(15 / 24)


@pytest.mark.parametrize(
    ("fpr", "recall"),
    [
        (0.0, 0.25),  # only 0.95 can be flagged without a false positive
        (1 / 6, 0.5),  # exactly one false positive allowed (float noise must not round it to zero)
        (0.2, 0.5),  # still one: 0.2 x 6 = 1.2
        (0.34, 0.5),  # two: 0.7 adds a legit, no fraud
        (0.5, 0.75),  # three: down to 0.5
        (1.0, 1.0),
    ],
)
def test_recall_at_fpr_by_hand(fpr: float, recall: float) -> None:
    assert recall_at_fpr(SCORES, LABELS, fpr) == pytest.approx(recall)


def test_alert_budget_by_hand() -> None:
    top3 = at_alert_budget(SCORES, LABELS, 0.3)
    assert (top3.flagged, top3.threshold) == (3, 0.8)
    assert top3.precision == pytest.approx(2 / 3)
    assert top3.recall == pytest.approx(0.5)
    top2 = at_alert_budget(SCORES, LABELS, 0.25)  # 2.5 alerts -> 2
    assert (top2.flagged, top2.precision, top2.recall) == (2, 0.5, 0.25)
    nothing = at_alert_budget(SCORES, LABELS, 0.0)
    assert (nothing.flagged, nothing.precision, nothing.recall, nothing.threshold) == (0, 0.0, 0.0, NEVER)


def test_confusion_and_rates_at_threshold_by_hand() -> None:
    confusion = confusion_at(SCORES, LABELS, 0.8)  # score >= 0.8: 0.95 (F), 0.9 (L), 0.8 (F)
    assert (confusion.tp, confusion.fp, confusion.tn, confusion.fn) == (2, 1, 5, 2)
    assert confusion.matrix() == [[5, 1], [2, 2]]
    assert confusion.alert_rate == pytest.approx(0.3)
    assert precision_recall_f1(SCORES, LABELS, 0.8) == pytest.approx((2 / 3, 0.5, 4 / 7))
    labels, matrix = confusion_matrix(SCORES, LABELS, 0.8)
    assert labels == list(CONFUSION_LABELS) == ["legit", "fraud"]
    assert matrix == [[5, 1], [2, 2]]
    # just above a score: that transaction is no longer flagged
    assert confusion_at(SCORES, LABELS, np.nextafter(0.8, 1.0)).tp == 1
    assert confusion_at(SCORES, LABELS, NEVER).flagged == 0


def test_expected_cost_by_hand() -> None:
    cost = expected_cost(SCORES, LABELS, AMOUNTS, 0.8, review_cost=100.0)
    # missed: the frauds at 0.5 (40) and 0.2 (5); one false alert (0.9) at 100
    assert cost.missed_fraud_amount == 45.0
    assert cost.missed_frauds == 2
    assert cost.false_alerts == 1
    assert cost.false_alert_cost == 100.0
    assert cost.caught_fraud_amount == 1300.0
    assert cost.caught_frauds == 2
    assert cost.total == 145.0
    assert cost.baseline == 1345.0
    assert cost.saving == 1200.0
    assert expected_cost(SCORES, LABELS, AMOUNTS, NEVER, 100.0).total == 1345.0  # no model
    everything = expected_cost(SCORES, LABELS, AMOUNTS, 0.0, 100.0)
    assert (everything.missed_fraud_amount, everything.false_alerts, everything.total) == (0.0, 6, 600.0)


# --- ties -------------------------------------------------------------------------------------------------


def test_recall_at_fpr_never_splits_a_tie_group() -> None:
    # The 0.5 group holds a fraud and two legit rows: taking it costs 2 false positives (FPR 0.5 of 4 legit).
    scores = [0.9, 0.5, 0.5, 0.5, 0.1, 0.1]
    y = [1, 1, 0, 0, 0, 0]
    assert recall_at_fpr(scores, y, 0.25) == 0.5  # a sort-then-cut would claim 1.0
    assert recall_at_fpr(scores, y, 0.5) == 1.0


def test_alert_budget_flags_whole_tie_groups_only() -> None:
    scores = [0.9, 0.8, 0.8, 0.8, *[0.1] * 6]
    y = [0, 1, 1, 0, *[0] * 6]
    within = at_alert_budget(scores, y, 0.3)  # 3 alerts allowed; the 0.8 group would make 4
    assert (within.flagged, within.precision, within.recall, within.threshold) == (1, 0.0, 0.0, 0.9)
    assert within.alert_rate == pytest.approx(0.1)
    whole = at_alert_budget(scores, y, 0.4)
    assert (whole.flagged, whole.precision, whole.recall, whole.threshold) == (4, 0.5, 1.0, 0.8)


def _brute_operating_points(
    scores: npt.NDArray[np.float64], y: npt.NDArray[np.int8]
) -> list[tuple[float, int, int, int]]:
    """(threshold, flagged, tp, fp) for every reachable threshold, computed one threshold at a time."""
    points = [(NEVER, 0, 0, 0)]
    for t in np.unique(scores)[::-1]:
        flagged = scores >= t
        tp = int((flagged & (y == 1)).sum())
        points.append((float(t), int(flagged.sum()), tp, int(flagged.sum()) - tp))
    return points


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_recall_at_fpr_and_budget_match_brute_force_on_tied_scores(seed: int) -> None:
    scores, y, _ = random_block(600, seed, fraud_rate=0.1, decimals=1)  # ~11 distinct scores: large ties
    points = _brute_operating_points(scores, y)
    positives, negatives, n = int(y.sum()), int((y == 0).sum()), y.size
    for level in (0.0, 0.001, 0.01, 0.05, 0.2, 0.5):
        best = max(tp for _, _, tp, fp in points if fp <= level * negatives)
        assert recall_at_fpr(scores, y, level) == pytest.approx(best / positives)
    for budget in (0.0, 0.02, 0.1, 0.3, 1.0):
        _, flagged, tp, _ = max((p for p in points if p[1] <= budget * n), key=lambda p: p[1])
        result = at_alert_budget(scores, y, budget)
        assert result.flagged == flagged
        assert result.precision == pytest.approx(tp / flagged if flagged else 0.0)


# --- agreement with scikit-learn --------------------------------------------------------------------------


@pytest.mark.parametrize(("seed", "decimals"), [(11, 2), (12, 3), (13, None)])
def test_ranking_metrics_agree_with_sklearn(seed: int, decimals: int | None) -> None:
    scores, y, _ = random_block(5000, seed, decimals=decimals)
    assert average_precision(scores, y) == pytest.approx(skm.average_precision_score(y, scores), abs=1e-12)
    assert roc_auc(scores, y) == pytest.approx(skm.roc_auc_score(y, scores), abs=1e-12)


@pytest.mark.parametrize("threshold", [0.0, 0.25, 0.4, 0.55, 0.9, 1.0])
def test_threshold_metrics_agree_with_sklearn(threshold: float) -> None:
    scores, y, _ = random_block(3000, 21)
    predicted = (scores >= threshold).astype(int)
    expected = skm.confusion_matrix(y, predicted, labels=[0, 1]).tolist()
    assert confusion_at(scores, y, threshold).matrix() == expected
    precision, recall, f1 = precision_recall_f1(scores, y, threshold)
    assert precision == pytest.approx(skm.precision_score(y, predicted, zero_division=0))
    assert recall == pytest.approx(skm.recall_score(y, predicted, zero_division=0))
    assert f1 == pytest.approx(skm.f1_score(y, predicted, zero_division=0))


def test_roc_points_lie_on_sklearns_curve_and_keep_its_area() -> None:
    scores, y, _ = random_block(4000, 31, decimals=3)
    fpr, tpr, thresholds = roc_curve_points(scores, y, max_points=10_000)
    sk_fpr, sk_tpr, _ = skm.roc_curve(y, scores, drop_intermediate=False)
    on_curve = set(zip(sk_fpr.round(12), sk_tpr.round(12), strict=True))
    assert all((round(f, 12), round(t, 12)) in on_curve for f, t in zip(fpr, tpr, strict=True))
    # collinear points were dropped, which must not change the area
    assert np.trapezoid(tpr, fpr) == pytest.approx(skm.roc_auc_score(y, scores), abs=1e-12)
    assert thresholds[0] == NEVER
    assert all(a > b for a, b in itertools.pairwise(thresholds))


def test_roc_points_are_downsampled_keeping_both_ends() -> None:
    scores, y, _ = random_block(20_000, 32, decimals=None)
    fpr, tpr, thresholds = roc_curve_points(scores, y, max_points=200)
    assert 150 <= len(fpr) <= 200
    assert len(fpr) == len(tpr) == len(thresholds)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0)
    assert np.all(np.diff(tpr) >= 0)
    assert np.all(np.diff(thresholds) < 0)
    # the down-sampled curve is still the curve: its area is close to the exact one
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc(scores, y), abs=2e-3)
    json.dumps({"fpr": fpr, "tpr": tpr, "threshold": thresholds}, allow_nan=False)  # KFP metadata is JSON
    with pytest.raises(EvaluationError, match="max_points"):
        roc_curve_points(scores, y, max_points=1)


def test_precision_recall_points_agree_with_sklearn() -> None:
    scores, y, _ = random_block(3000, 33)
    precision, recall, thresholds = precision_recall_curve_points(scores, y, max_points=100_000)
    sk_precision, sk_recall, sk_thresholds = skm.precision_recall_curve(y, scores)
    # sklearn lists thresholds ascending and ends with (recall 0, precision 1); ours start there
    assert precision == pytest.approx(sk_precision[::-1].tolist())
    assert recall == pytest.approx(sk_recall[::-1].tolist())
    assert thresholds[1:] == pytest.approx(sk_thresholds[::-1].tolist())


# --- input validation -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scores", "y", "message"),
    [
        ([0.1, float("nan")], [0, 1], r"row 1 has nan"),
        ([0.1, 1.5], [0, 1], r"\[0, 1\]; row 1"),
        ([-0.2, 0.5], [0, 1], r"row 0"),
        ([0.1, 0.5], [0, 2], r"0 \(legit\) or 1 \(fraud\); row 1"),
        ([0.1, 0.5], [0, 1, 1], r"one per score"),
        ([], [], r"empty"),
        ([[0.1, 0.2]], [[0, 1]], r"one-dimensional"),
        ([0.1, 0.5], ["a", "b"], r"0/1 numbers"),
    ],
)
def test_bad_inputs_are_refused(scores: list[float], y: list[int], message: str) -> None:
    with pytest.raises(EvaluationError, match=message):
        average_precision(scores, y)


def test_bad_amounts_and_parameters_are_refused() -> None:
    with pytest.raises(EvaluationError, match="amounts must be finite and >= 0; row 2"):
        expected_cost(SCORES, LABELS, [1, 2, -3, 4, 5, 6, 7, 8, 9, 10], 0.5, 100.0)
    with pytest.raises(EvaluationError, match="review cost"):
        expected_cost(SCORES, LABELS, AMOUNTS, 0.5, -1.0)
    with pytest.raises(EvaluationError, match="false-positive rate must be a share"):
        recall_at_fpr(SCORES, LABELS, 1.5)
    with pytest.raises(EvaluationError, match="alert budget"):
        at_alert_budget(SCORES, LABELS, -0.1)
    with pytest.raises(EvaluationError, match="NaN"):
        confusion_at(SCORES, LABELS, float("nan"))


def test_a_block_without_fraud_has_no_ranking_metrics() -> None:
    y = np.zeros(10, dtype=int)
    for metric in (average_precision, roc_auc):
        with pytest.raises(EvaluationError, match=r"no fraud.*widen") as caught:
            metric(SCORES, y)
        assert isinstance(caught.value, PipelineError)
    with pytest.raises(EvaluationError, match="only fraud"):
        roc_auc(SCORES, np.ones(10, dtype=int))


def test_operating_curve_counts() -> None:
    curve = operating_curve([0.5, 0.5, 0.2, 0.9], [1, 0, 0, 1], [10.0, 20.0, 30.0, 40.0])
    assert curve.thresholds.tolist() == [NEVER, 0.9, 0.5, 0.2]
    assert curve.flagged.tolist() == [0, 1, 3, 4]
    assert curve.tp.tolist() == [0, 1, 2, 2]
    assert curve.fp.tolist() == [0, 0, 1, 2]
    assert curve.caught_amount is not None
    assert curve.caught_amount.tolist() == [0.0, 40.0, 50.0, 50.0]
    assert curve.cost(5.0).tolist() == [50.0, 10.0, 5.0, 10.0]


# --- the block report -------------------------------------------------------------------------------------


def test_evaluate_block_by_hand() -> None:
    thresholds = choose_thresholds(SCORES, LABELS, AMOUNTS, alert_budget=0.5, review_cost=100.0, review_share=0.2)
    report = evaluate_block(SCORES, LABELS, AMOUNTS, thresholds, block="validation")
    assert (report.block, report.rows, report.positives, report.fraud_rate) == ("validation", 10, 4, 0.4)
    assert report.average_precision == pytest.approx(94 / 144)
    assert report.roc_auc == pytest.approx(15 / 24)
    assert report.recall_at_fpr_0_1pct == report.recall_at_fpr_1pct == 0.25  # 0 false positives allowed of 6
    assert (report.threshold, report.review_threshold) == (0.8, 0.6)
    assert report.precision_at_threshold == pytest.approx(2 / 3)
    assert report.recall_at_threshold == 0.5
    assert report.f1_at_threshold == pytest.approx(4 / 7)
    assert report.amount_recall_at_threshold == pytest.approx(1300 / 1345)
    assert report.alert_rate_at_threshold == pytest.approx(0.3)
    assert report.review_rate == pytest.approx(0.2)  # 0.7 and 0.6
    assert report.alert_budget == 0.5
    assert report.precision_at_budget == pytest.approx(2 / 5)  # top 5: 0.95 .. 0.6
    assert report.recall_at_budget == 0.5
    assert (report.expected_cost, report.baseline_cost, report.cost_saving) == (145.0, 1345.0, 1200.0)
    assert (report.missed_fraud_amount, report.caught_fraud_amount, report.false_alerts) == (45.0, 1300.0, 1)
    assert (report.tp, report.fp, report.tn, report.fn) == (2, 1, 5, 2)
    assert report.confusion_matrix() == (["legit", "fraud"], [[5, 1], [2, 2]])
    what_if = evaluate_block(SCORES, LABELS, AMOUNTS, thresholds, review_cost=10.0, alert_budget=0.3)
    assert (what_if.expected_cost, what_if.review_cost, what_if.precision_at_budget) == (55.0, 10.0, 2 / 3)
    positional = evaluate_block(SCORES, LABELS, AMOUNTS, thresholds, 0.3, 10.0)
    assert positional == what_if


def test_report_keys_are_mlflow_and_kfp_safe_and_round_trip() -> None:
    thresholds = choose_thresholds(SCORES, LABELS, AMOUNTS, review_cost=100.0, alert_budget=0.3)
    report = evaluate_block(SCORES, LABELS, AMOUNTS, thresholds)
    metrics = report.metrics(prefix="test_")
    assert metrics["test_average_precision"] == pytest.approx(94 / 144)
    assert all(METRIC_KEY.match(key) for key in metrics)
    assert all(isinstance(v, float) for v in metrics.values())
    assert "test_block" not in metrics
    assert {fpr_key(0.001), fpr_key(0.01)} <= set(report.to_dict())
    assert (fpr_key(0.001), fpr_key(0.01), fpr_key(0.05)) == (
        "recall_at_fpr_0_1pct",
        "recall_at_fpr_1pct",
        "recall_at_fpr_5pct",
    )
    assert EvaluationReport.from_dict(json.loads(json.dumps(report.to_dict(), allow_nan=False))) == report
    with pytest.raises(EvaluationError, match="prefix"):
        report.metrics(prefix="test-")
    with pytest.raises(EvaluationError, match="lacks"):
        EvaluationReport.from_dict({"block": "test"})


def test_evaluate_block_without_fraud_names_the_block() -> None:
    thresholds = Thresholds(
        block=0.5,
        review=0.4,
        alert_budget=0.02,
        review_cost=100.0,
        review_share=0.01,
        expected_cost_on_validation=0.0,
        alert_rate_on_validation=0.0,
    )
    with pytest.raises(EvaluationError, match=r"the test block has no fraud among its 10 rows.*widen"):
        evaluate_block(SCORES, np.zeros(10), AMOUNTS, thresholds)


def test_a_million_rows_agree_with_sklearn() -> None:
    scores, y, amounts = random_block(1_000_000, 41, fraud_rate=0.01, decimals=4)
    curve = operating_curve(scores, y, amounts)
    assert curve.rows == 1_000_000
    assert curve.fraud_amount == pytest.approx(float(amounts[y == 1].sum()), rel=1e-12)
    assert average_precision(scores, y) == pytest.approx(skm.average_precision_score(y, scores), abs=1e-10)
    sk_fpr, sk_tpr, _ = skm.roc_curve(y, scores, drop_intermediate=False)
    for level in (0.001, 0.01):
        assert recall_at_fpr(scores, y, level) == pytest.approx(sk_tpr[sk_fpr <= level].max())


def test_shares_are_not_cut_short_by_float_noise() -> None:
    # 0.29 * 100 is 28.999999999999996 in floating point; a budget of 29% of 100 rows still allows 29 alerts.
    scores = np.linspace(1.0, 0.01, 100)
    y = np.zeros(100, dtype=int)
    y[::2] = 1
    assert at_alert_budget(scores, y, 0.29).flagged == 29
    # 100 legit rows, frauds ranked 29th and 31st: reaching the second costs 29 false positives, 29% of 100.
    ranked_labels = np.array([0] * 28 + [1, 0, 1] + [0] * 71)
    ranked_scores = np.linspace(1.0, 0.0, ranked_labels.size)
    assert recall_at_fpr(ranked_scores, ranked_labels, 0.29) == 1.0
    assert recall_at_fpr(ranked_scores, ranked_labels, 0.285) == 0.5
