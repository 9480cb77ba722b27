"""Model evaluation: metrics, decision thresholds and the HTML model report, as pure functions on numpy arrays.

No MLflow and no KFP here: the `evaluate` component calls these functions and logs what they return, so every
number can be checked by hand in a unit test.
"""

from __future__ import annotations

from fraud.errors import EvaluationError
from fraud.evaluation.metrics import (
    CONFUSION_LABELS,
    FPR_LEVELS,
    NEVER,
    AlertBudgetResult,
    Confusion,
    CostBreakdown,
    EvaluationReport,
    OperatingCurve,
    at_alert_budget,
    average_precision,
    confusion_at,
    confusion_matrix,
    evaluate_block,
    expected_cost,
    fpr_key,
    operating_curve,
    precision_recall_curve_points,
    precision_recall_f1,
    recall_at_fpr,
    roc_auc,
    roc_curve_points,
)
from fraud.evaluation.report import FIGURES, build_figures, save_figures, write_model_report
from fraud.evaluation.thresholds import (
    DEFAULT_ALERT_BUDGET,
    DEFAULT_REVIEW_COST,
    DEFAULT_REVIEW_SHARE,
    Thresholds,
    choose_thresholds,
)

__all__ = [
    "CONFUSION_LABELS",
    "DEFAULT_ALERT_BUDGET",
    "DEFAULT_REVIEW_COST",
    "DEFAULT_REVIEW_SHARE",
    "FIGURES",
    "FPR_LEVELS",
    "NEVER",
    "AlertBudgetResult",
    "Confusion",
    "CostBreakdown",
    "EvaluationError",
    "EvaluationReport",
    "OperatingCurve",
    "Thresholds",
    "at_alert_budget",
    "average_precision",
    "build_figures",
    "choose_thresholds",
    "confusion_at",
    "confusion_matrix",
    "evaluate_block",
    "expected_cost",
    "fpr_key",
    "operating_curve",
    "precision_recall_curve_points",
    "precision_recall_f1",
    "recall_at_fpr",
    "roc_auc",
    "roc_curve_points",
    "save_figures",
    "write_model_report",
]
