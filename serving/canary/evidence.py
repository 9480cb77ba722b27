"""What the rollout analysis sees of live traffic: one window of both arms, side by side.

The runtime (local splitter or cluster controller) builds a `Window` every analysis interval from what the two
arms answered in that interval; the analysis (`serving.canary.analysis`) only ever reads these objects, so the
statistics are the same whichever runtime collected them and can be tested on synthetic windows.

Conventions:
- Times are Unix seconds (float, UTC).
- A *request* is one HTTP call; a *row* is one scored transaction (a V1 request may carry several instances).
  `errors` counts failed requests (5xx / timeouts); `blocks` and `reviews` count rows with that decision among
  the `rows` successfully scored. `latencies_ms` has one entry per request, `scores` one per scored row.
- Decision codes in `paired_decisions`: 0 allow, 1 review, 2 block (`DECISION_CODES`).
- In shadow the challenger `ArmSample` describes the shadow calls (their latency, errors, answers); none of its
  answers reached a client, and `expected_challenger_share` is 0.

The arrays are kept as given (converted to float64 / int8 once); the dataclasses are frozen but numpy arrays are
mutable, so callers hand over arrays they no longer write to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
CodeArray = npt.NDArray[np.int8]

DECISION_CODES: Final[dict[str, int]] = {"allow": 0, "review": 1, "block": 2}
"""Decision names as the predictor answers them, and the codes used in `Window.paired_decisions`."""


def _floats(values: Any, name: str) -> FloatArray:
    """A 1-D float64 copy-free view of `values`, refusing NaN and wrong shapes with the field's name."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {array.shape}")
    if array.size and not np.all(np.isfinite(array)):
        bad = int(np.flatnonzero(~np.isfinite(array))[0])
        raise ValueError(f"{name}: value at index {bad} is not a finite number ({array[bad]})")
    return array


def _codes(values: Any, name: str) -> CodeArray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {array.shape}")
    if array.size and (array.min() < 0 or array.max() > 2):
        bad = int(np.flatnonzero((array < 0) | (array > 2))[0])
        raise ValueError(f"{name}: decision code at index {bad} is {array[bad]}, expected 0 allow, 1 review, 2 block")
    return array.astype(np.int8, copy=False)


def _count(value: int, name: str) -> int:
    if int(value) != value or value < 0:
        raise ValueError(f"{name}: expected a count >= 0, got {value!r}")
    return int(value)


@dataclass(frozen=True, eq=False)
class ArmSample:
    """What one arm (champion or challenger) did during a window.

    Args:
        requests: HTTP requests the arm received (in shadow: shadow calls made).
        errors: requests that failed (5xx, timeout, connection error); at most `requests`.
        rows: transactions the arm scored successfully.
        blocks: rows it decided `block`.
        reviews: rows it decided `review`.
        latencies_ms: one latency per request, milliseconds (failed requests included when their time is known).
        scores: one fraud probability per scored row, in [0, 1].
    """

    requests: int
    errors: int
    rows: int
    blocks: int
    reviews: int
    latencies_ms: FloatArray = field(default_factory=lambda: np.empty(0))
    scores: FloatArray = field(default_factory=lambda: np.empty(0))

    def __post_init__(self) -> None:
        for name in ("requests", "errors", "rows", "blocks", "reviews"):
            object.__setattr__(self, name, _count(getattr(self, name), name))
        object.__setattr__(self, "latencies_ms", _floats(self.latencies_ms, "latencies_ms"))
        object.__setattr__(self, "scores", _floats(self.scores, "scores"))
        if self.errors > self.requests:
            raise ValueError(f"errors: {self.errors} failed requests but only {self.requests} requests")
        if self.blocks + self.reviews > self.rows:
            raise ValueError(f"blocks + reviews: {self.blocks} + {self.reviews} exceeds the {self.rows} rows scored")
        if self.latencies_ms.size and self.latencies_ms.min() < 0:
            raise ValueError("latencies_ms: latencies must be >= 0")
        if self.scores.size and (self.scores.min() < 0 or self.scores.max() > 1):
            raise ValueError("scores: fraud probabilities must lie in [0, 1]")

    @classmethod
    def empty(cls) -> ArmSample:
        """An arm that saw nothing in the window (no traffic yet, or a shadow arm before it is called)."""
        return cls(requests=0, errors=0, rows=0, blocks=0, reviews=0)

    @classmethod
    def from_answers(
        cls,
        *,
        latencies_ms: Any,
        failed: Any,
        scores: Any,
        decisions: Any,
    ) -> ArmSample:
        """Build an arm's sample from per-request and per-row records, the shape a splitter naturally keeps.

        Args:
            latencies_ms: one latency per request.
            failed: one bool per request, True when it failed.
            scores: one fraud probability per scored row.
            decisions: one decision code (0 allow, 1 review, 2 block) per scored row.
        """
        failed_array = np.asarray(failed, dtype=bool)
        latency_array = _floats(latencies_ms, "latencies_ms")
        if failed_array.shape != latency_array.shape:
            raise ValueError(f"failed: {failed_array.size} flags for {latency_array.size} request latencies")
        score_array = _floats(scores, "scores")
        decision_array = _codes(decisions, "decisions")
        if decision_array.shape != score_array.shape:
            raise ValueError(f"decisions: {decision_array.size} decisions for {score_array.size} scores")
        return cls(
            requests=int(latency_array.size),
            errors=int(failed_array.sum()),
            rows=int(score_array.size),
            blocks=int((decision_array == DECISION_CODES["block"]).sum()),
            reviews=int((decision_array == DECISION_CODES["review"]).sum()),
            latencies_ms=latency_array,
            scores=score_array,
        )

    def summary(self) -> dict[str, Any]:
        """Counts and a few quantiles, JSON-ready, for reports and status output."""

        def quantile(values: FloatArray, q: float) -> float | None:
            return float(np.quantile(values, q)) if values.size else None

        return {
            "requests": self.requests,
            "errors": self.errors,
            "rows": self.rows,
            "blocks": self.blocks,
            "reviews": self.reviews,
            "latency_p50_ms": quantile(self.latencies_ms, 0.5),
            "latency_p99_ms": quantile(self.latencies_ms, 0.99),
            "score_mean": float(self.scores.mean()) if self.scores.size else None,
            "score_p99": quantile(self.scores, 0.99),
        }


@dataclass(frozen=True, eq=False)
class ArmLabels:
    """Labelled, matured rows of one arm: the truth (`y_true`, 0/1) and the score the arm gave each of them."""

    y_true: npt.NDArray[np.int8]
    scores: FloatArray

    def __post_init__(self) -> None:
        y = np.asarray(self.y_true)
        if y.ndim != 1:
            raise ValueError(f"y_true: expected a 1-D array, got shape {y.shape}")
        if y.size and not np.isin(y, (0, 1)).all():
            bad = int(np.flatnonzero(~np.isin(y, (0, 1)))[0])
            raise ValueError(f"y_true: label at index {bad} is {y[bad]!r}, expected 0 or 1")
        object.__setattr__(self, "y_true", y.astype(np.int8, copy=False))
        scores = _floats(self.scores, "scores")
        if scores.shape != y.shape:
            raise ValueError(f"scores: {scores.size} scores for {y.size} labels")
        object.__setattr__(self, "scores", scores)

    @classmethod
    def empty(cls) -> ArmLabels:
        return cls(y_true=np.empty(0, dtype=np.int8), scores=np.empty(0))


@dataclass(frozen=True, eq=False)
class LabelSample:
    """Labels that arrived during the window (joined by request id and row) for rows each arm scored earlier.

    Each label is given once, in the window in which it arrived: the analysis adds them up across windows.

    In shadow both arms scored the same rows, so the two `ArmLabels` may describe the same transactions; in
    weighted steps they describe disjoint ones. Blocked transactions rarely get a label (no chargeback can
    follow a payment that never happened), which the label check states rather than hides.
    """

    champion: ArmLabels
    challenger: ArmLabels


@dataclass(frozen=True, eq=False)
class Window:
    """Both arms over the same interval: the unit of evidence every check judges.

    Args:
        start: window start, Unix seconds.
        end: window end, Unix seconds (> start).
        champion: what the champion did.
        challenger: what the challenger did (in shadow: the shadow calls).
        expected_challenger_share: the configured share of requests sent to the challenger, 0..1 (0 in shadow).
        shadow: True while the challenger only scores copies of the traffic.
        paired_scores: (champion, challenger) scores of the same transactions, same order; shadow only.
        paired_decisions: (champion, challenger) decision codes of the same transactions; shadow only.
        labels: labels that arrived during this window (each given once), when a label feed exists.
    """

    start: float
    end: float
    champion: ArmSample
    challenger: ArmSample
    expected_challenger_share: float
    shadow: bool
    paired_scores: tuple[FloatArray, FloatArray] | None = None
    paired_decisions: tuple[CodeArray, CodeArray] | None = None
    labels: LabelSample | None = None

    def __post_init__(self) -> None:
        if not self.end > self.start:
            raise ValueError(f"end: window end {self.end} is not after its start {self.start}")
        if not 0.0 <= self.expected_challenger_share <= 1.0:
            raise ValueError(f"expected_challenger_share: {self.expected_challenger_share} is outside 0..1")
        if self.shadow and self.expected_challenger_share != 0.0:
            raise ValueError("expected_challenger_share: must be 0 in shadow (no request is routed to the challenger)")
        if self.paired_scores is not None:
            champion = _floats(self.paired_scores[0], "paired_scores[0]")
            challenger = _floats(self.paired_scores[1], "paired_scores[1]")
            if champion.shape != challenger.shape:
                raise ValueError(f"paired_scores: {champion.size} champion scores vs {challenger.size} challenger ones")
            object.__setattr__(self, "paired_scores", (champion, challenger))
        if self.paired_decisions is not None:
            champion_codes = _codes(self.paired_decisions[0], "paired_decisions[0]")
            challenger_codes = _codes(self.paired_decisions[1], "paired_decisions[1]")
            if champion_codes.shape != challenger_codes.shape:
                raise ValueError(
                    f"paired_decisions: {champion_codes.size} champion decisions vs {challenger_codes.size} challenger"
                )
            object.__setattr__(self, "paired_decisions", (champion_codes, challenger_codes))

    @property
    def seconds(self) -> float:
        """The window's length."""
        return self.end - self.start

    def _labelled_counts(self) -> dict[str, int]:
        assert self.labels is not None
        labels = self.labels
        return {"champion": int(labels.champion.y_true.size), "challenger": int(labels.challenger.y_true.size)}

    def summary(self) -> dict[str, Any]:
        """JSON-ready counts of the window, for the report's timeline."""
        return {
            "start": self.start,
            "end": self.end,
            "shadow": self.shadow,
            "expected_challenger_share": self.expected_challenger_share,
            "champion": self.champion.summary(),
            "challenger": self.challenger.summary(),
            "paired": 0 if self.paired_scores is None else int(self.paired_scores[0].size),
            "labelled": None if self.labels is None else self._labelled_counts(),
        }
