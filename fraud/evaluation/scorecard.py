"""One block's report: every headline number of the validation or test block at the chosen thresholds.

It sits above both `metrics` (the numbers) and `thresholds` (the operating point they are read at), so neither of
those two imports the other's dependants.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from fraud.errors import EvaluationError
from fraud.evaluation.metrics import (
    CONFUSION_LABELS,
    FPR_LEVELS,
    Confusion,
    _at_alert_budget,
    _average_precision,
    _labels,
    _recall_at_fpr,
    _roc_auc,
    check_review_cost,
    check_scores,
    check_share,
    confusion_at,
    expected_cost,
    operating_curve,
)
from fraud.evaluation.thresholds import Thresholds


@dataclass(frozen=True)
class EvaluationReport:
    """Every headline number for one block (validation or test) at the chosen thresholds.

    Field names are the metric keys: letters, digits and underscores only, so they go unchanged to MLflow
    (``log_metrics``), KFP ``Metrics.log_metric`` and Prometheus. `metrics` adds a block prefix.
    """

    block: str
    rows: int
    positives: int
    fraud_rate: float
    average_precision: float
    roc_auc: float
    recall_at_fpr_0_1pct: float
    recall_at_fpr_1pct: float
    threshold: float
    review_threshold: float
    precision_at_threshold: float
    recall_at_threshold: float
    f1_at_threshold: float
    amount_recall_at_threshold: float
    """Share of the fraud *amount* caught at the threshold: a model that catches the large frauds saves more."""
    alert_rate_at_threshold: float
    review_rate: float
    """Share of transactions in the review band ``[review_threshold, threshold)``."""
    alert_budget: float
    precision_at_budget: float
    recall_at_budget: float
    alert_rate_at_budget: float
    review_cost: float
    expected_cost: float
    baseline_cost: float
    """Expected cost with no model: every fraud missed (the total fraud amount)."""
    cost_saving: float
    missed_fraud_amount: float
    caught_fraud_amount: float
    false_alerts: int
    tp: int
    fp: int
    tn: int
    fn: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvaluationReport:
        names = {f.name for f in fields(cls)}
        missing = names.difference(data)
        if missing:
            raise EvaluationError(f"evaluation report lacks {sorted(missing)}")
        return cls(**{name: data[name] for name in names})

    def metrics(self, prefix: str = "") -> dict[str, float]:
        """Every number as ``{prefix + key: float}``, ready for ``mlflow.log_metrics`` or KFP ``Metrics``.

        ``prefix`` (e.g. ``"test_"``) must itself be a safe key fragment.
        """
        if prefix and not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", prefix):
            raise EvaluationError(f"metric prefix {prefix!r} must be letters, digits and underscores")
        return {prefix + key: float(value) for key, value in asdict(self).items() if key != "block"}

    def confusion(self) -> Confusion:
        return Confusion(tp=self.tp, fp=self.fp, tn=self.tn, fn=self.fn)

    def confusion_matrix(self) -> tuple[list[str], list[list[int]]]:
        """Categories and matrix ready for KFP's ``ClassificationMetrics.log_confusion_matrix``."""
        return list(CONFUSION_LABELS), self.confusion().matrix()


def evaluate_block(
    scores: npt.ArrayLike,
    y: npt.ArrayLike,
    amounts: npt.ArrayLike,
    thresholds: Thresholds,
    alert_budget: float | None = None,
    review_cost: float | None = None,
    *,
    block: str = "test",
) -> EvaluationReport:
    """Score one block against thresholds chosen elsewhere (on validation), with one sort for all curve metrics.

    ``alert_budget`` and ``review_cost`` default to the values the thresholds were chosen with, so a report and
    its thresholds cannot silently disagree; pass them only to ask a what-if question. A block without fraud
    (or without legitimate rows) raises `EvaluationError`: its ranking metrics are undefined.
    """
    budget = check_share(thresholds.alert_budget if alert_budget is None else alert_budget, "alert budget")
    cost_per_review = check_review_cost(thresholds.review_cost if review_cost is None else review_cost)
    s = check_scores(scores)
    curve = operating_curve(s, y, amounts)
    where = f"the {block} block"
    curve.require_both_classes("evaluation", where)
    labels = _labels(y, s.size)
    confusion = confusion_at(s, labels, thresholds.block)
    cost = expected_cost(s, labels, amounts, thresholds.block, cost_per_review)
    at_budget = _at_alert_budget(curve, budget)
    in_band = int(np.count_nonzero((s >= thresholds.review) & (s < thresholds.block)))
    return EvaluationReport(
        block=block,
        rows=curve.rows,
        positives=curve.positives,
        fraud_rate=curve.positives / curve.rows,
        average_precision=_average_precision(curve, where),
        roc_auc=_roc_auc(curve, where),
        recall_at_fpr_0_1pct=_recall_at_fpr(curve, FPR_LEVELS[0], where),
        recall_at_fpr_1pct=_recall_at_fpr(curve, FPR_LEVELS[1], where),
        threshold=float(thresholds.block),
        review_threshold=float(thresholds.review),
        precision_at_threshold=confusion.precision,
        recall_at_threshold=confusion.recall,
        f1_at_threshold=confusion.f1,
        amount_recall_at_threshold=cost.caught_fraud_amount / cost.baseline if cost.baseline > 0 else 0.0,
        alert_rate_at_threshold=confusion.alert_rate,
        review_rate=in_band / curve.rows,
        alert_budget=budget,
        precision_at_budget=at_budget.precision,
        recall_at_budget=at_budget.recall,
        alert_rate_at_budget=at_budget.alert_rate,
        review_cost=cost_per_review,
        expected_cost=cost.total,
        baseline_cost=cost.baseline,
        cost_saving=cost.saving,
        missed_fraud_amount=cost.missed_fraud_amount,
        caught_fraud_amount=cost.caught_fraud_amount,
        false_alerts=cost.false_alerts,
        tp=confusion.tp,
        fp=confusion.fp,
        tn=confusion.tn,
        fn=confusion.fn,
    )
