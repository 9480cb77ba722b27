"""Decision thresholds: chosen once on the validation block, stored with the model, applied by the predictor.

A transaction is *blocked* when its score is ``>= block``, sent to *review* when it is in ``[review, block)``
and *allowed* otherwise. The thresholds are chosen on the validation block (never on test, which must stay an
unbiased estimate of what the chosen operating point will do) by `choose_thresholds`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from fraud.errors import EvaluationError
from fraud.evaluation.metrics import (
    NEVER,
    check_review_cost,
    check_scores,
    check_share,
    expected_cost,
    operating_curve,
)

DEFAULT_ALERT_BUDGET: Final = 0.02
"""Share of traffic the block threshold may flag: the issue's 2%."""

DEFAULT_REVIEW_COST: Final = 5_000.0
"""Cost of one false alert, in PaySim currency units (the units of ``amount``).

Why 5,000: a manual review is 10–15 minutes of an analyst's time plus a delayed or declined customer, commonly
put at a few US dollars per alert in card and mobile-money operations. PaySim's currency is unnamed (the
simulator was calibrated on an African mobile-money service); its median transaction is 74,872 units and the
median legitimate PAYMENT 9,482, amounts that correspond to tens of dollars of mobile money, i.e. roughly
1,000–2,000 units per dollar, so a review costs a few thousand units. 5,000 is 7% of the median transaction and
1.1% of the median fraud (441,423): a median-sized fraud is worth a review once its odds exceed about 1:88,
and the cost rule, not only the alert budget, shapes the threshold. It is a pipeline parameter: operators with
real review costs should set their own.
"""

DEFAULT_REVIEW_SHARE: Final = 0.01
"""Share of traffic the review band holds below the block threshold (1%)."""

DECISIONS: Final = np.array(["allow", "review", "block"])
"""Decision labels by index: 0 allow, 1 review, 2 block."""

_COST_TIE: Final = 1e-12
"""Costs within this fraction of the no-model cost count as equal (cumulative sums differ in the last bits)."""


@dataclass(frozen=True)
class Thresholds:
    """The block threshold, the review band below it, and how they were chosen.

    Stored with every model version (``to_dict``/``from_dict``, plain JSON numbers), read back by the predictor.
    """

    block: float
    review: float
    alert_budget: float
    review_cost: float
    review_share: float
    expected_cost_on_validation: float
    alert_rate_on_validation: float
    review_rate_on_validation: float | None = None
    recall_on_validation: float | None = None
    baseline_cost_on_validation: float | None = None

    def __post_init__(self) -> None:
        for name in ("block", "review"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0.0 <= value <= NEVER):
                raise EvaluationError(f"{name} threshold must be a number in [0, 1]; got {value!r}")
        if self.review > self.block:
            raise EvaluationError(f"review threshold {self.review} is above the block threshold {self.block}")
        check_share(self.alert_budget, "alert budget")
        check_share(self.review_share, "review share")
        check_review_cost(self.review_cost)

    @property
    def blocks_nothing(self) -> bool:
        """True when no valid probability reaches the block threshold (budget 0, or no score fits the budget)."""
        return self.block > 1.0

    def decide(self, scores: npt.ArrayLike) -> npt.NDArray[np.str_]:
        """``"allow"``/``"review"``/``"block"`` for each score, vectorised (one comparison pass per threshold).

        Scores outside [0, 1] or NaN raise `EvaluationError`: a NaN would otherwise compare false everywhere
        and be allowed.
        """
        return DECISIONS[self.decision_codes(np.ravel(scores))].reshape(np.shape(scores))

    def decision_codes(self, scores: npt.ArrayLike) -> npt.NDArray[np.intp]:
        """Each 1-D score's decision as its index in `DECISIONS` (0 allow, 1 review, 2 block), checked as in
        `decide`; for callers that keep their own objects per decision (strings in a numpy str array are copied
        into new Python strings on every ``astype(object)`` or ``tolist()``)."""
        s = check_scores(scores, allow_empty=True)
        return (s >= self.review).astype(np.intp) + (s >= self.block)

    def decide_one(self, score: float) -> str:
        """The decision for one score without numpy overhead (the predictor's single-transaction path)."""
        if not 0.0 <= score <= 1.0:  # also refuses NaN
            raise EvaluationError(f"score must be a fraud probability in [0, 1]; got {score!r}")
        if score >= self.block:
            return "block"
        return "review" if score >= self.review else "allow"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Thresholds:
        required = [f.name for f in fields(cls) if f.default is not None]
        missing = [name for name in required if data.get(name) is None]
        if missing:
            raise EvaluationError(f"stored thresholds lack {missing}")

        def optional(name: str) -> float | None:
            value = data.get(name)
            return None if value is None else float(value)

        try:
            return cls(
                block=float(data["block"]),
                review=float(data["review"]),
                alert_budget=float(data["alert_budget"]),
                review_cost=float(data["review_cost"]),
                review_share=float(data["review_share"]),
                expected_cost_on_validation=float(data["expected_cost_on_validation"]),
                alert_rate_on_validation=float(data["alert_rate_on_validation"]),
                review_rate_on_validation=optional("review_rate_on_validation"),
                recall_on_validation=optional("recall_on_validation"),
                baseline_cost_on_validation=optional("baseline_cost_on_validation"),
            )
        except (TypeError, ValueError) as exc:
            raise EvaluationError(f"stored thresholds are not numbers: {exc}") from None


def choose_thresholds(
    scores: npt.ArrayLike,
    y: npt.ArrayLike,
    amounts: npt.ArrayLike,
    *,
    alert_budget: float = DEFAULT_ALERT_BUDGET,
    review_cost: float = DEFAULT_REVIEW_COST,
    review_share: float = DEFAULT_REVIEW_SHARE,
) -> Thresholds:
    """Choose the block and review thresholds on the validation block.

    Block threshold: among the thresholds whose alert rate (share of rows with ``score >= threshold``) is within
    ``alert_budget``, the one with the lowest expected cost (`fraud.evaluation.metrics.expected_cost`). Ties go to
    the higher threshold: the same cost with fewer alerts is better for the analysts and the customers. The
    candidates are the distinct validation scores plus "flag nothing" (`NEVER`): tie groups are never split,
    and when no group fits in the budget (budget 0, or all scores equal) nothing is blocked.

    Review threshold: scores in ``[review, block)`` go to manual review. The band is sized by traffic share
    (about ``review_share`` of the rows, the tie-group boundary closest to it, a tie going to the smaller band)
    rather than by a score width, because analyst capacity is a share of volume while the score scale of a
    model is not comparable across retrains; it catches the near misses just under the block threshold, where
    the model is least sure. It is never below 0 (it is a validation score) and never above ``block``
    (``review == block`` is an empty band, e.g. with ``review_share=0``).

    Cost: one sort and cumulative sums, so a validation block of millions of rows takes well under a second.
    """
    budget = check_share(alert_budget, "alert budget")
    share = check_share(review_share, "review share")
    cost_per_review = check_review_cost(review_cost)
    curve = operating_curve(scores, y, amounts)
    if curve.positives == 0:
        raise EvaluationError(
            f"the validation block has no fraud among its {curve.rows:,} rows, so no threshold can be chosen; "
            "widen the validation block (move the split boundaries or generate more rows)"
        )
    last = curve.index_within(budget)
    cost = curve.cost(cost_per_review)[: last + 1]
    best = int(np.flatnonzero(cost <= cost.min() + _COST_TIE * max(1.0, curve.fraud_amount))[0])

    target = curve.flagged[best] + share * curve.rows
    above = int(np.searchsorted(curve.flagged, target, side="left"))
    candidates = [i for i in (above - 1, above) if best <= i < curve.flagged.size]
    review_index = min(candidates, key=lambda i: (abs(float(curve.flagged[i]) - target), i))

    block = float(curve.thresholds[best])
    review = float(curve.thresholds[review_index])
    s = check_scores(scores)
    breakdown = expected_cost(s, y, amounts, block, cost_per_review)
    return Thresholds(
        block=block,
        review=review,
        alert_budget=budget,
        review_cost=cost_per_review,
        review_share=share,
        expected_cost_on_validation=breakdown.total,
        alert_rate_on_validation=float(curve.flagged[best]) / curve.rows,
        review_rate_on_validation=float(curve.flagged[review_index] - curve.flagged[best]) / curve.rows,
        recall_on_validation=breakdown.caught_frauds / curve.positives,
        baseline_cost_on_validation=breakdown.baseline,
    )
