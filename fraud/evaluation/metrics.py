"""Fraud metrics on plain numpy arrays: ranking quality, operating points and money.

Every function takes fraud probabilities (``scores`` in [0, 1]), labels (``y``, 1 = fraud) and, where money is
involved, transaction ``amounts`` in PaySim's currency units. A transaction is *flagged* when its score is
``>= threshold``. Nothing here talks to MLflow or KFP: the `evaluate` component turns the results into
`Metrics`/`ClassificationMetrics` and MLflow calls, so the numbers can be tested by hand.

Tied scores are never split. A model that gives 1,000 transactions the same score cannot flag half of them;
pretending it can (as a sort-then-cut implementation does silently) overstates recall at a fixed false-positive
rate or alert budget, sometimes by a lot for tree models with coarse scores. All operating points are
therefore taken at the boundaries between groups of equal scores (`OperatingCurve`).

Everything that scans thresholds sorts the scores once and works on cumulative sums, so a block of millions of
rows costs one ``argsort`` (0.1–0.2 s per million rows), not one pass per candidate threshold.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from fraud.errors import EvaluationError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

NEVER: Final = math.nextafter(1.0, math.inf)
"""A threshold above every valid probability: nothing is flagged. Finite, so it survives JSON, MLflow params
and KFP metadata (``inf`` does not)."""

CONFUSION_LABELS: Final[tuple[str, str]] = ("legit", "fraud")
"""Category order of every confusion matrix here: rows are the actual class, columns the decision."""

FPR_LEVELS: Final[tuple[float, float]] = (0.001, 0.01)
"""The false-positive rates the platform reports recall at (0.1% and 1%)."""

METRIC_KEY: Final = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
"""Keys that MLflow, KFP Metrics and Prometheus all accept unchanged."""

_EPS: Final = 1e-9


# --- input validation -------------------------------------------------------------------------------------


def check_scores(scores: npt.ArrayLike, *, name: str = "scores", allow_empty: bool = False) -> FloatArray:
    """Scores as a 1-D float64 array of probabilities; anything else is a bug upstream and is refused loudly.

    A NaN or a margin/logit passed where a probability is expected would otherwise be flagged or allowed
    silently (NaN compares false with every threshold), which in a fraud system means "allow".
    """
    try:
        array = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise EvaluationError(f"{name} must be numbers: {exc}") from None
    if array.ndim != 1:
        raise EvaluationError(f"{name} must be one-dimensional; got shape {array.shape}")
    if array.size == 0 and not allow_empty:
        raise EvaluationError(f"{name} is empty: there are no rows to evaluate")
    bad = ~((array >= 0.0) & (array <= 1.0))
    if bad.any():
        row = int(np.argmax(bad))
        raise EvaluationError(
            f"{name} must be fraud probabilities in [0, 1]; row {row} has {array[row].item()!r} "
            "(pass predict_proba()[:, 1], not a margin or a logit)"
        )
    return array


def _labels(y: npt.ArrayLike, n: int) -> npt.NDArray[np.int8]:
    array = np.asarray(y)
    if array.shape != (n,):
        raise EvaluationError(f"labels have shape {array.shape}; expected ({n},), one per score")
    if array.dtype.kind not in "biuf":
        raise EvaluationError(f"labels must be 0/1 numbers or booleans; got dtype {array.dtype}")
    if array.dtype.kind != "b":
        bad = (array != 0) & (array != 1)
        if bad.any():
            row = int(np.argmax(bad))
            raise EvaluationError(f"labels must be 0 (legit) or 1 (fraud); row {row} has {array[row].item()!r}")
    return array.astype(np.int8)


def _amounts(amounts: npt.ArrayLike, n: int) -> FloatArray:
    try:
        array = np.asarray(amounts, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise EvaluationError(f"amounts must be numbers: {exc}") from None
    if array.shape != (n,):
        raise EvaluationError(f"amounts have shape {array.shape}; expected ({n},), one per score")
    bad = ~(np.isfinite(array) & (array >= 0.0))
    if bad.any():
        row = int(np.argmax(bad))
        raise EvaluationError(f"amounts must be finite and >= 0; row {row} has {array[row].item()!r}")
    return array


def check_share(value: float, name: str) -> float:
    """A share of rows (budget, rate) in [0, 1]; pipeline parameters reach here straight from the user."""
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise EvaluationError(f"{name} must be a share in [0, 1]; got {value!r}")
    return value


def _threshold(value: float) -> float:
    value = float(value)
    if math.isnan(value):
        raise EvaluationError("threshold is NaN")
    return value


def check_review_cost(value: float) -> float:
    """A finite, non-negative cost per false alert (0 makes false alerts free: the budget alone then binds)."""
    value = float(value)
    if not (math.isfinite(value) and value >= 0.0):
        raise EvaluationError(f"review cost must be a finite amount >= 0; got {value!r}")
    return value


def _count_within(share: float, rows: int) -> int:
    """Largest count whose share of ``rows`` is <= ``share``, forgiving float noise (1% of 1000 is 10, not 9)."""
    exact = share * rows
    return min(rows, math.floor(exact + _EPS * max(1.0, exact)))


# --- the operating curve ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OperatingCurve:
    """Counts at every distinct threshold, highest first, with a leading "flag nothing" point.

    Entry ``k`` describes flagging every transaction with ``score >= thresholds[k]``: ``thresholds[0]`` is
    `NEVER` (nothing flagged), the last entry is the lowest score (everything flagged). Only tie-group
    boundaries appear, so every entry is an operating point a real threshold can reach.
    """

    thresholds: FloatArray
    flagged: IntArray
    tp: IntArray
    fp: IntArray
    caught_amount: FloatArray | None
    positives: int
    negatives: int

    @property
    def rows(self) -> int:
        return self.positives + self.negatives

    @property
    def fraud_amount(self) -> float:
        """Total fraud amount (the cost of having no model); 0 when amounts were not given."""
        return float(self.caught_amount[-1]) if self.caught_amount is not None else 0.0

    @property
    def recall(self) -> FloatArray:
        return self.tp / max(self.positives, 1)

    @property
    def fpr(self) -> FloatArray:
        return self.fp / max(self.negatives, 1)

    @property
    def precision(self) -> FloatArray:
        """TP / flagged; 0 where nothing is flagged (sklearn's ``zero_division=0``)."""
        return np.divide(self.tp, self.flagged, out=np.zeros(self.tp.shape), where=self.flagged > 0)

    @property
    def alert_rate(self) -> FloatArray:
        return self.flagged / self.rows

    def cost(self, review_cost: float) -> FloatArray:
        """Expected cost at every threshold (see `expected_cost` for the definition)."""
        if self.caught_amount is None:
            raise EvaluationError("the operating curve was built without amounts; cost needs them")
        return (self.fraud_amount - self.caught_amount) + check_review_cost(review_cost) * self.fp

    def index_within(self, budget: float) -> int:
        """Index of the lowest threshold whose alert count stays within ``budget`` (a share of rows)."""
        limit = _count_within(check_share(budget, "alert budget"), self.rows)
        return int(np.searchsorted(self.flagged, limit, side="right")) - 1

    def require_both_classes(self, purpose: str, block: str = "the block") -> None:
        if self.positives == 0:
            raise EvaluationError(
                f"{block} has no fraud among its {self.rows:,} rows, so {purpose} is undefined; "
                "widen the block (move the split boundaries or use more data)"
            )
        if self.negatives == 0:
            raise EvaluationError(
                f"{block} has only fraud ({self.rows:,} rows), so {purpose} is undefined; widen the block"
            )


def operating_curve(scores: npt.ArrayLike, y: npt.ArrayLike, amounts: npt.ArrayLike | None = None) -> OperatingCurve:
    """Sort once and accumulate counts (and fraud amounts) per tie group; every threshold scan starts here."""
    s = check_scores(scores)
    labels = _labels(y, s.size)
    order = np.argsort(s)[::-1]
    ranked = s[order]
    ends = np.append(np.flatnonzero(ranked[1:] != ranked[:-1]), s.size - 1)
    ranked_labels = labels[order]
    tp = np.cumsum(ranked_labels, dtype=np.int64)[ends]
    flagged = ends.astype(np.int64) + 1
    caught: FloatArray | None = None
    if amounts is not None:
        amt = _amounts(amounts, s.size)[order]
        caught = np.concatenate(([0.0], np.cumsum(np.where(ranked_labels == 1, amt, 0.0))[ends]))
    positives = int(tp[-1])
    return OperatingCurve(
        thresholds=np.concatenate(([NEVER], ranked[ends])),
        flagged=np.concatenate(([0], flagged)).astype(np.int64),
        tp=np.concatenate(([0], tp)).astype(np.int64),
        fp=np.concatenate(([0], flagged - tp)).astype(np.int64),
        caught_amount=caught,
        positives=positives,
        negatives=int(s.size) - positives,
    )


# --- ranking metrics --------------------------------------------------------------------------------------


def _average_precision(curve: OperatingCurve, block: str = "the block") -> float:
    curve.require_both_classes("average precision", block)
    return float(np.sum(np.diff(curve.recall) * curve.precision[1:]))


def _roc_auc(curve: OperatingCurve, block: str = "the block") -> float:
    curve.require_both_classes("ROC AUC", block)
    tp = curve.tp.astype(np.float64)
    area = np.sum(np.diff(curve.fp) * (tp[1:] + tp[:-1])) / 2.0
    return float(area / (curve.positives * curve.negatives))


def _recall_at_fpr(curve: OperatingCurve, fpr: float, block: str = "the block") -> float:
    curve.require_both_classes("recall at a false-positive rate", block)
    max_fp = _count_within(check_share(fpr, "false-positive rate"), curve.negatives)
    index = int(np.searchsorted(curve.fp, max_fp, side="right")) - 1
    return float(curve.tp[index] / curve.positives)


def average_precision(scores: npt.ArrayLike, y: npt.ArrayLike) -> float:
    """Area under the precision–recall step curve, sum of (R_k - R_k-1) * P_k over tie groups.

    The same definition as `sklearn.metrics.average_precision_score` (no interpolation), so both agree to
    rounding. Its no-skill value is the block's fraud rate, which is why every report puts the two side by side.
    """
    return _average_precision(operating_curve(scores, y))


def roc_auc(scores: npt.ArrayLike, y: npt.ArrayLike) -> float:
    """Area under the ROC curve with ties counted half (Mann–Whitney), as `sklearn.metrics.roc_auc_score`."""
    return _roc_auc(operating_curve(scores, y))


def recall_at_fpr(scores: npt.ArrayLike, y: npt.ArrayLike, fpr: float) -> float:
    """The largest recall any threshold reaches while its false-positive rate stays <= ``fpr``.

    Tied scores are flagged together or not at all: if taking a tie group would push the false-positive rate
    over ``fpr``, the group is left out even when it holds frauds. ``fpr * negatives`` is rounded down to a
    whole number of false positives (with a tolerance for float noise, so 1% of 1,000 legit rows allows 10).
    """
    return _recall_at_fpr(operating_curve(scores, y), fpr)


def fpr_key(fpr: float) -> str:
    """The metric key for recall at a false-positive rate: 0.001 → ``recall_at_fpr_0_1pct``."""
    percent = f"{fpr * 100:.4f}".rstrip("0").rstrip(".")
    return "recall_at_fpr_" + percent.replace(".", "_") + "pct"


# --- operating points -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertBudgetResult:
    """What flagging the top ``budget`` share of transactions gives."""

    budget: float
    flagged: int
    alert_rate: float
    precision: float
    recall: float
    threshold: float
    """Lowest flagged score (flag ``score >= threshold``); `NEVER` when nothing fits in the budget."""


def _at_alert_budget(curve: OperatingCurve, budget: float) -> AlertBudgetResult:
    index = curve.index_within(budget)
    return AlertBudgetResult(
        budget=float(budget),
        flagged=int(curve.flagged[index]),
        alert_rate=float(curve.alert_rate[index]),
        precision=float(curve.precision[index]),
        recall=float(curve.recall[index]),
        threshold=float(curve.thresholds[index]),
    )


def at_alert_budget(scores: npt.ArrayLike, y: npt.ArrayLike, budget: float) -> AlertBudgetResult:
    """Precision and recall when the highest-scored ``budget`` share of transactions is flagged.

    Ties: whole tie groups are flagged, highest score first, only while the total stays within
    ``floor(budget * rows)``; the group that would overflow the budget is left out entirely, so the actual
    alert rate can be below the budget (reported as ``alert_rate``). An analyst team sized for 2% of traffic
    cannot absorb 2.5%, and picking an arbitrary half of a tie group is not something a threshold can do.
    Precision is 0 when nothing is flagged; recall is 0 when the block has no fraud.
    """
    return _at_alert_budget(operating_curve(scores, y), budget)


@dataclass(frozen=True)
class Confusion:
    """Counts at one threshold (flagged = ``score >= threshold``) and the rates derived from them."""

    tp: int
    fp: int
    tn: int
    fn: int

    @property
    def rows(self) -> int:
        return self.tp + self.fp + self.tn + self.fn

    @property
    def flagged(self) -> int:
        return self.tp + self.fp

    @property
    def precision(self) -> float:
        """0 when nothing is flagged (sklearn's ``zero_division=0``)."""
        return self.tp / self.flagged if self.flagged else 0.0

    @property
    def recall(self) -> float:
        """0 when the block has no fraud."""
        positives = self.tp + self.fn
        return self.tp / positives if positives else 0.0

    @property
    def f1(self) -> float:
        denominator = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / denominator if denominator else 0.0

    @property
    def false_positive_rate(self) -> float:
        negatives = self.fp + self.tn
        return self.fp / negatives if negatives else 0.0

    @property
    def alert_rate(self) -> float:
        return self.flagged / self.rows if self.rows else 0.0

    def matrix(self) -> list[list[int]]:
        """``[[tn, fp], [fn, tp]]``: rows are the actual class, columns the decision, in `CONFUSION_LABELS` order
        (the layout KFP's ``ClassificationMetrics.log_confusion_matrix`` expects)."""
        return [[self.tn, self.fp], [self.fn, self.tp]]


def confusion_at(scores: npt.ArrayLike, y: npt.ArrayLike, threshold: float) -> Confusion:
    """Confusion counts when every transaction with ``score >= threshold`` is flagged."""
    s = check_scores(scores)
    labels = _labels(y, s.size).astype(bool)
    flagged = s >= _threshold(threshold)
    tp = int(np.count_nonzero(flagged & labels))
    fp = int(np.count_nonzero(flagged)) - tp
    positives = int(np.count_nonzero(labels))
    return Confusion(tp=tp, fp=fp, tn=int(s.size) - positives - fp, fn=positives - tp)


def precision_recall_f1(scores: npt.ArrayLike, y: npt.ArrayLike, threshold: float) -> tuple[float, float, float]:
    """Precision, recall and F1 at a threshold (0 where undefined, as sklearn with ``zero_division=0``)."""
    confusion = confusion_at(scores, y, threshold)
    return confusion.precision, confusion.recall, confusion.f1


def confusion_matrix(scores: npt.ArrayLike, y: npt.ArrayLike, threshold: float) -> tuple[list[str], list[list[int]]]:
    """Categories and matrix ready for KFP's ``ClassificationMetrics.log_confusion_matrix``."""
    return list(CONFUSION_LABELS), confusion_at(scores, y, threshold).matrix()


@dataclass(frozen=True)
class CostBreakdown:
    """Expected cost at one threshold and its parts, in the amounts' currency units."""

    total: float
    """``missed_fraud_amount + false_alerts * review_cost``."""
    missed_fraud_amount: float
    missed_frauds: int
    false_alerts: int
    false_alert_cost: float
    caught_fraud_amount: float
    caught_frauds: int
    baseline: float
    """The cost with no model at all: every fraud goes through, nobody reviews anything."""
    review_cost: float

    @property
    def saving(self) -> float:
        return self.baseline - self.total


def expected_cost(
    scores: npt.ArrayLike, y: npt.ArrayLike, amounts: npt.ArrayLike, threshold: float, review_cost: float
) -> CostBreakdown:
    """What a threshold costs on a block of labelled transactions.

    Definition: a fraud that is *not* flagged costs its full amount (the operator reimburses or loses it);
    a legitimate transaction that *is* flagged costs ``review_cost`` (an analyst's time and the customer's
    friction); a flagged fraud costs nothing (its review is paid for by the loss it prevents) and an allowed
    legitimate transaction costs nothing. Chargeback recovery, partial losses and the value of deterrence are
    deliberately left out: the number ranks thresholds and models, it is not an accounting figure.
    """
    s = check_scores(scores)
    labels = _labels(y, s.size).astype(bool)
    amt = _amounts(amounts, s.size)
    cost_per_review = check_review_cost(review_cost)
    flagged = s >= _threshold(threshold)
    caught = flagged & labels
    missed = labels & ~flagged
    false_alerts = int(np.count_nonzero(flagged & ~labels))
    missed_amount = float(amt[missed].sum())
    caught_amount = float(amt[caught].sum())
    return CostBreakdown(
        total=missed_amount + false_alerts * cost_per_review,
        missed_fraud_amount=missed_amount,
        missed_frauds=int(np.count_nonzero(missed)),
        false_alerts=false_alerts,
        false_alert_cost=false_alerts * cost_per_review,
        caught_fraud_amount=caught_amount,
        caught_frauds=int(np.count_nonzero(caught)),
        baseline=float(amt[labels].sum()),
        review_cost=cost_per_review,
    )


# --- curves for KFP and the report ------------------------------------------------------------------------


def downsample_indices(x: FloatArray, y: FloatArray, max_points: int) -> IntArray:
    """At most ``max_points`` indices spread evenly along the curve's length, always keeping both ends.

    Sampling by path length rather than by index keeps the shape where the curve turns: a fraud ROC curve
    climbs most of its height within the first 1% of false positives, where index sampling would put few points.
    Both axes are scaled to [0, 1] first so neither dominates.
    """
    n = int(x.size)
    if max_points < 2:
        raise EvaluationError(f"max_points must be at least 2; got {max_points}")
    if n <= max_points:
        return np.arange(n, dtype=np.int64)

    def scaled(v: FloatArray) -> FloatArray:
        span = float(v.max() - v.min())
        return (v - v.min()) / span if span > 0 else np.zeros_like(v)

    steps = np.hypot(np.diff(scaled(x)), np.diff(scaled(y)))
    length = np.concatenate(([0.0], np.cumsum(steps)))
    if length[-1] == 0.0:
        return np.array([0, n - 1], dtype=np.int64)
    picked = np.searchsorted(length, np.linspace(0.0, length[-1], max_points), side="left")
    picked[0], picked[-1] = 0, n - 1
    return np.unique(picked.clip(0, n - 1)).astype(np.int64)


def _roc_points(curve: OperatingCurve, max_points: int) -> tuple[FloatArray, FloatArray, FloatArray]:
    fp, tp = curve.fp, curve.tp
    # Drop points on a straight segment between their neighbours: they change neither the plot nor the area.
    keep = np.flatnonzero(np.concatenate(([True], (np.diff(fp, 2) != 0) | (np.diff(tp, 2) != 0), [True])))
    fpr, tpr, thr = curve.fpr[keep], curve.recall[keep], curve.thresholds[keep]
    picked = downsample_indices(fpr, tpr, max_points)
    return fpr[picked], tpr[picked], thr[picked]


def roc_curve_points(
    scores: npt.ArrayLike, y: npt.ArrayLike, max_points: int = 200
) -> tuple[list[float], list[float], list[float]]:
    """ROC curve as ``(fpr, tpr, thresholds)`` lists for ``ClassificationMetrics.log_roc_curve``.

    Starts at (0, 0) with threshold `NEVER` and ends at (1, 1) with the lowest score; in between at most
    ``max_points - 2`` points, so a million-row block does not write a million rows of KFP metadata.
    """
    curve = operating_curve(scores, y)
    curve.require_both_classes("the ROC curve")
    fpr, tpr, thr = _roc_points(curve, max_points)
    return fpr.tolist(), tpr.tolist(), thr.tolist()


def _pr_points(curve: OperatingCurve, max_points: int) -> tuple[FloatArray, FloatArray, FloatArray]:
    precision = curve.precision.copy()
    precision[0] = 1.0  # sklearn's convention: recall 0 is drawn at precision 1
    picked = downsample_indices(curve.recall, precision, max_points)
    return precision[picked], curve.recall[picked], curve.thresholds[picked]


def precision_recall_curve_points(
    scores: npt.ArrayLike, y: npt.ArrayLike, max_points: int = 200
) -> tuple[list[float], list[float], list[float]]:
    """Precision–recall curve as ``(precision, recall, thresholds)``, highest threshold first, down-sampled.

    The first point is (recall 0, precision 1, threshold `NEVER`), sklearn's convention for plotting.
    """
    curve = operating_curve(scores, y)
    curve.require_both_classes("the precision-recall curve")
    precision, recall, thr = _pr_points(curve, max_points)
    return precision.tolist(), recall.tolist(), thr.tolist()
