"""How well the served model does: measured once labels mature, estimated from the scores before that.

Measured (labels old enough to be final): precision and recall of the block decision (the operating point chosen
at the alert budget), average precision, and the expected cost per day (`fraud.evaluation.metrics.expected_cost`:
a missed fraud costs its amount, a false alert the review cost), each with a 95 % interval: Clopper-Pearson
for the two proportions, a bootstrap over transactions for AP and cost.

Estimated (no final labels yet): confidence-based performance estimation, as NannyML's CBPE does it. The
version's held-out scores and labels (its reference) fit an isotonic map from score to fraud probability; the
window's calibrated probabilities then give the *expected* frauds among blocks, the expected recall and the
expected cost. It assumes the relation between score and fraud has not changed (no concept drift), which is
exactly what labels later check, so it is always marked ``estimate`` and never mixed with measured figures.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
from scipy import stats as sst

from fraud.evaluation.metrics import average_precision, expected_cost
from monitoring.reference import Reference

BOOTSTRAP: Final = 200
CONFIDENCE: Final = 0.95


@dataclass(frozen=True)
class Interval:
    value: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class Performance:
    """Performance of a window's blocks. ``kind`` says whether it was measured on labels or estimated."""

    kind: Literal["measured", "estimated"]
    rows: int
    blocks: int
    frauds: float
    precision: Interval
    recall: Interval
    average_precision: Interval
    cost_per_day: Interval
    days: float
    pending_labels: int
    note: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def clopper_pearson(successes: int, trials: int, confidence: float = CONFIDENCE) -> Interval:
    """Exact binomial interval of a proportion (None when there are no trials)."""
    if trials <= 0:
        return Interval(None, None, None)
    tail = (1 - confidence) / 2
    low = 0.0 if successes == 0 else float(sst.beta.ppf(tail, successes, trials - successes + 1))
    high = 1.0 if successes == trials else float(sst.beta.ppf(1 - tail, successes + 1, trials - successes))
    return Interval(successes / trials, low, high)


def _percentiles(values: list[float], point: float | None) -> Interval:
    finite = np.asarray([v for v in values if np.isfinite(v)], dtype=np.float64)
    if point is None or finite.size == 0:
        return Interval(point, None, None)
    tail = (1 - CONFIDENCE) / 2 * 100
    return Interval(point, float(np.percentile(finite, tail)), float(np.percentile(finite, 100 - tail)))


def measured(
    scores: npt.ArrayLike,
    labels: npt.ArrayLike,
    amounts: npt.ArrayLike,
    block_threshold: float,
    review_cost: float,
    *,
    days: float,
    pending_labels: int = 0,
    seed: int = 0,
) -> Performance:
    """Performance on matured labels, with 95 % intervals.

    Args:
        scores, labels, amounts: the labelled rows' scores, final labels and amounts.
        block_threshold: the served version's block threshold (its decisions are ``score >= block_threshold``).
        review_cost: cost of one false alert (the version's `Thresholds.review_cost`).
        days: how many days the rows cover (for cost per day).
        pending_labels: rows of the window still waiting for a final label.
        seed: bootstrap seed.
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int8)
    amt = np.asarray(amounts, dtype=np.float64)
    blocked = s >= block_threshold
    frauds = int(y.sum())
    caught = int(np.count_nonzero(blocked & (y == 1)))
    per_day = max(days, 1e-9)
    cost = expected_cost(s, y, amt, block_threshold, review_cost).total / per_day if s.size else None
    ap = average_precision(s, y) if 0 < frauds < s.size else None
    rng = np.random.default_rng(seed)
    ap_draws: list[float] = []
    cost_draws: list[float] = []
    if s.size:
        for _ in range(BOOTSTRAP):
            take = rng.integers(0, s.size, s.size)
            yb = y[take]
            if ap is not None and 0 < int(yb.sum()) < yb.size:
                ap_draws.append(average_precision(s[take], yb))
            cost_draws.append(expected_cost(s[take], yb, amt[take], block_threshold, review_cost).total / per_day)
    return Performance(
        kind="measured",
        rows=int(s.size),
        blocks=int(blocked.sum()),
        frauds=float(frauds),
        precision=clopper_pearson(caught, int(blocked.sum())),
        recall=clopper_pearson(caught, frauds),
        average_precision=_percentiles(ap_draws, ap),
        cost_per_day=_percentiles(cost_draws, cost),
        days=days,
        pending_labels=pending_labels,
        note=f"{frauds:,} frauds among {s.size:,} rows with final labels",
    )


class Calibration:
    """Score -> probability of fraud, fitted on a version's held-out scores and labels (isotonic, monotone)."""

    def __init__(self, scores: npt.ArrayLike, labels: npt.ArrayLike) -> None:
        from sklearn.isotonic import IsotonicRegression

        s = np.asarray(scores, dtype=np.float64)
        y = np.asarray(labels, dtype=np.float64)
        self.frauds = int(y.sum())
        self._model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(s, y)

    @classmethod
    def from_reference(cls, reference: Reference) -> Calibration:
        if "isFraud" not in reference.scores.columns:
            raise ValueError(f"reference of version {reference.version} has no labels to calibrate on")
        return cls(reference.scores["score"].to_numpy(), reference.scores["isFraud"].to_numpy())

    def probability(self, scores: npt.ArrayLike) -> npt.NDArray[np.float64]:
        return np.asarray(self._model.predict(np.asarray(scores, dtype=np.float64)), dtype=np.float64)


def estimated(
    scores: npt.ArrayLike,
    amounts: npt.ArrayLike,
    block_threshold: float,
    review_cost: float,
    calibration: Calibration,
    *,
    days: float,
    pending_labels: int = 0,
) -> Performance:
    """Expected performance from calibrated scores (CBPE); intervals from the Poisson-binomial variance."""
    s = np.asarray(scores, dtype=np.float64)
    amt = np.asarray(amounts, dtype=np.float64)
    p = calibration.probability(s)
    blocked = s >= block_threshold
    z = float(sst.norm.ppf(0.5 + CONFIDENCE / 2))

    def bounded(value: float | None, sd: float, low: float = 0.0, high: float = 1.0) -> Interval:
        if value is None:
            return Interval(None, None, None)
        return Interval(value, max(low, value - z * sd), min(high, value + z * sd))

    n_blocked = int(blocked.sum())
    caught = float(p[blocked].sum())
    frauds = float(p.sum())
    caught_sd = float(np.sqrt(np.sum(p[blocked] * (1 - p[blocked]))))
    precision = bounded(caught / n_blocked if n_blocked else None, caught_sd / max(n_blocked, 1))
    recall = bounded(caught / frauds if frauds > 0 else None, caught_sd / max(frauds, 1e-9))
    per_day = max(days, 1e-9)
    missed_amount = float(np.sum(p[~blocked] * amt[~blocked]))
    false_alerts = float(np.sum(1 - p[blocked]))
    cost = (missed_amount + false_alerts * review_cost) / per_day
    cost_sd = (
        float(np.sqrt(np.sum(p[~blocked] * (1 - p[~blocked]) * np.square(amt[~blocked])))) + review_cost * caught_sd
    ) / per_day
    return Performance(
        kind="estimated",
        rows=int(s.size),
        blocks=n_blocked,
        frauds=frauds,
        precision=precision,
        recall=recall,
        average_precision=Interval(None, None, None),
        cost_per_day=bounded(cost, cost_sd, 0.0, float("inf")),
        days=days,
        pending_labels=pending_labels,
        note=(
            "ESTIMATE from calibrated scores (CBPE, isotonic fit on the version's held-out labels, "
            f"{calibration.frauds:,} frauds); assumes no concept drift; replaced by measured figures once labels "
            "mature"
        ),
    )
