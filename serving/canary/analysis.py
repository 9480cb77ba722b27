"""The model-aware canary analysis: every check, window after window, with the sequential state they keep.

Each window (`serving.canary.evidence.Window`) compares the challenger with the champion *on the same window*,
never with fixed thresholds, so whatever hits both arms at once (a load spike, a fraud wave) cancels out.

Checks (`CHECKS`), each one-sided where the question is harm (an improvement never fails a check):

- ``errors``: failed requests, challenger vs champion (Fisher noncentral hypergeometric on the split).
- ``latency`` (weighted steps; on shadow calls only with ``shadow_latency``, since a shadow copy is not served
  the way a client's request is): share of each arm's requests above the window's pooled quantiles
  ``latency_quantiles`` (p50, p90, p99 mixed, as the score check mixes its quantiles: the body carries the power,
  the tail the stalls), after the
  practical minimum effect is taken off the challenger's latencies: only a request slower than the champion's by
  more than ``latency_tolerance_ratio`` *and* more than ``latency_tolerance_ms`` counts as harm. Windows that start
  before the challenger has served for ``warmup_seconds`` do not count (start-up, cold caches, a controller still
  starting). Requests of one window are not independent on a busy machine (a stall or a queue hits one process
  at a time), so one window can multiply the latency evidence by at most ``latency_window_cap``, and the check
  passes only after enough counted windows that a challenger beyond the tolerance in each of them would have
  failed (`latency_windows_to_fail`).
- ``blocks`` / ``reviews``: decision rates. In shadow, discordant pairs of the same transactions (sign test);
  in weighted steps, the split of decisions between arms given the rows each scored (exact at 0.04 %).
- ``scores``: the upper tail of the score distribution: share above the pooled quantiles ``score_quantiles``
  (0.9 and 0.99 by default: the body's top and the alerting tail), paired in shadow and split in steps.
- ``sample_ratio``: the challenger's share of requests against the configured weight, two-sided (weighted only).
- ``labels``: recall (and precision) at the alert budget once delayed labels arrive; never passes without them.

Error control: the rollout's overall chance of a wrongful failure is at most ``alpha``. Bonferroni splits it
evenly over the checks (``alpha / len(CHECKS)``). A check with two modes multiplies the test martingales of its
paired and its split evidence (their product is again a test martingale: the evidence of shadow and of the
weighted steps adds up instead of splitting the budget). Within a test, looks are free: the p-values are
always valid. The latency check's cap keeps it a test supermartingale (each window's likelihood ratio is only
ever lowered), so it keeps that guarantee and adds robustness to what the per-request model ignores.

A check *fails* when its always-valid p-value reaches its alpha; it then stays failed. It *passes* when it has
at least ``min_samples`` challenger observations in the current mode and has not failed: "no harm found with
this much evidence", with the always-valid interval showing how much harm the evidence can still hide. It is
*inconclusive* below that sample. In shadow, where both models score every transaction, blocks and reviews
also need the power to have caught ``shadow_detectable_ratio`` times the champion's odds before they pass, so a
broken threshold at a fraud-scale rate (0.04 % -> 0.16 % blocks) is caught there, not left to the small arms
of the first weighted steps.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any, Final

import numpy as np

from serving.canary.evidence import DECISION_CODES, ArmLabels, ArmSample, FloatArray, Window
from serving.canary.stats import (
    GRID,
    OddsRatioEvidence,
    ProportionBounds,
    binomial_loglik,
    grid_index,
    hypergeometric_loglik,
    log_mean,
    paired_discordance,
    paired_tail_discordance,
    split_counts,
)

CHECKS: Final[tuple[str, ...]] = ("errors", "latency", "blocks", "reviews", "scores", "sample_ratio", "labels")
"""Every check, in the order reports show them."""


RARE_EVENT_CHECKS: Final[frozenset[str]] = frozenset({"errors", "blocks", "reviews"})
"""Checks on events rare enough that a pass can hide a large relative harm; their results carry the ratio the
evidence could have detected (``details["detectable_ratio"]``)."""


SHADOW_POWER_CHECKS: Final[frozenset[str]] = frozenset({"blocks", "reviews"})
"""Checks that pass in shadow only once their paired evidence has the power ``shadow_detectable_ratio`` asks."""


class CheckStatus(StrEnum):
    PASS = "pass"  # noqa: S105 -- a verdict, not a password
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class AnalysisConfig:
    """Tolerances and error budget of the analysis. Defaults are what `benchmarks/canary_analysis.py` measures.

    Odds-ratio tolerances are rounded to the statistics grid (steps of 2^0.25).
    """

    alpha: float = 0.05
    """Overall chance of failing a challenger that is no worse than the champion, across checks and looks."""
    min_samples: int = 100
    """Challenger observations a check needs in the current mode before it can pass."""
    shadow_detectable_ratio: float = 2.5
    """In shadow, the block and review checks pass only once their paired evidence could have caught this many
    times the champion's odds (`OddsRatioEvidence.detectable_ratio`, rounded down to the grid: 2.38), so shadow,
    where both models score every transaction, lasts until a broken threshold at a fraud-scale rate would almost
    surely have shown: 8 champion blocks, ~20,000 requests at 0.04 % blocks, ~4,000 at 0.2 %. Set to 4, a 4x
    change (0.04 -> 0.16 %) would be caught at about even odds in shadow; at 2.5, 98 % of the time
    (`benchmarks/canary_analysis.py` measures it)."""
    error_tolerance: float = 2**0.5
    """Largest harmless odds ratio of a request failing, challenger vs champion: +41 %."""
    decision_tolerance: float = 2**0.25
    """Largest harmless odds ratio of a block (or review), challenger vs champion: +19 %."""
    score_tolerance: float = 2**0.5
    """Largest harmless odds ratio of a score above the pooled upper quantiles."""
    score_quantiles: tuple[float, ...] = (0.9, 0.99)
    """Pooled quantiles whose exceedance the score check compares: the body's top and the alerting tail."""
    latency_quantiles: tuple[float, ...] = (0.5, 0.9, 0.99)
    """Pooled latency quantiles whose exceedances the latency check compares, mixed (p50, p90, p99)."""
    latency_tolerance_ratio: float = 0.2
    """Relative floor of a latency harm: a challenger request counts as slower only beyond 1 + this times the
    champion's latency (+20 % is harmless)."""
    latency_tolerance_ms: float = 10.0
    """Absolute floor of a latency harm, milliseconds: ... and only beyond this many ms more (jitter of a few ms
    on a busy machine never fails the check, whatever the ratio)."""
    latency_window_cap: float = 4.0
    """The most one window can multiply the latency evidence by: requests within a window are not independent
    draws on a busy machine (a stall hits one process at a time), so no single window decides."""
    warmup_seconds: float = 30.0
    """Windows starting before the challenger has served this long (since the rollout started) do not count
    for latency."""
    sample_ratio_tolerance: float = 2**0.25
    """Largest harmless odds ratio between the observed and the configured challenger share (either way)."""
    alert_budget: float = 0.005
    """Share of transactions a model may alert on; recall and precision are measured at this budget."""
    recall_tolerance: float = 0.1
    """Largest harmless drop in recall at the alert budget (absolute). Bounding a drop to 0.1 anytime-validly
    takes about 1,000 labelled frauds per arm; labels are scarce, so a label gate mostly waits (and pauses)."""
    min_labelled_frauds: int = 30
    """Labelled frauds each arm needs before the label check can pass."""
    shadow_operational: bool = True
    """Judge errors (and, with `shadow_latency`, latency) of shadow calls against the champion's. Turn off when the
    runtime's shadow calls are not comparable with served requests (sent after the answer, on a busier path, with
    another timeout): errors are then judged from the first weighted step on, and not required in shadow."""
    shadow_latency: bool = False
    """Judge latency on shadow calls too. Off by default: a shadow copy is not served the way a client's request
    is (it is sent after the champion's call and waits behind it wherever the two predictors share CPU, under its
    own in-flight cap instead of the clients' connections), so on a busy host an equal challenger's shadow calls
    are systematically slower: measured at load ~10, p50 400-750 ms against the champion's 180-330 ms for the
    same model. Latency is judged from the first weighted step on, where both arms serve clients alike."""

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha: {self.alpha} must lie strictly between 0 and 1")
        if self.min_samples < 1:
            raise ValueError(f"min_samples: {self.min_samples} must be >= 1")
        for name in ("error_tolerance", "decision_tolerance", "score_tolerance", "sample_ratio_tolerance"):
            if getattr(self, name) < 1.0:
                raise ValueError(f"{name}: {getattr(self, name)} must be >= 1 (an odds ratio no worse than equal)")
        if self.shadow_detectable_ratio <= self.decision_tolerance:
            raise ValueError(
                f"shadow_detectable_ratio: {self.shadow_detectable_ratio} must exceed decision_tolerance "
                f"{self.decision_tolerance} (a harm within the tolerance is never detected)"
            )
        self._check_quantiles_and_latency()
        if not 0.0 < self.alert_budget < 1.0:
            raise ValueError(f"alert_budget: {self.alert_budget} must lie strictly between 0 and 1")

    def check_alpha(self, check: str) -> float:
        """The share of alpha one check may spend over the whole rollout (Bonferroni over the checks)."""
        if check not in CHECKS:
            raise ValueError(f"unknown check {check!r}; the checks are {', '.join(CHECKS)}")
        return self.alpha / len(CHECKS)

    def _check_quantiles_and_latency(self) -> None:
        for name in ("score_quantiles", "latency_quantiles"):
            quantiles = getattr(self, name)
            if not quantiles:
                raise ValueError(f"{name}: at least one quantile is needed")
            for q in quantiles:
                if not 0.0 < q < 1.0:
                    raise ValueError(f"{name}: quantile {q} must lie strictly between 0 and 1")
        for name in ("latency_tolerance_ratio", "latency_tolerance_ms", "warmup_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: {getattr(self, name)} must be >= 0")
        if self.latency_window_cap <= 1.0:
            raise ValueError(f"latency_window_cap: {self.latency_window_cap} must exceed 1 (a window must count)")

    def latency_windows_to_fail(self) -> int:
        """Counted windows the latency check needs before it can pass: as many as a challenger beyond the
        tolerance in every window, each giving the capped evidence, needs to fail it (one more for the mixture's
        cost over the grid and the quantiles)."""
        return math.ceil(math.log(1.0 / self.check_alpha("latency")) / math.log(self.latency_window_cap)) + 1

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["score_quantiles"] = list(self.score_quantiles)
        data["latency_quantiles"] = list(self.latency_quantiles)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnalysisConfig:
        known = {f for f in cls.__dataclass_fields__}
        # a state written before the latency check mixed quantiles: its single quantile is superseded
        data = {key: value for key, value in data.items() if key != "latency_quantile"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"analysis config: unknown field(s) {sorted(unknown)}")
        values = dict(data)
        for name in ("score_quantiles", "latency_quantiles"):
            if name in values:
                values[name] = tuple(float(q) for q in values[name])
        return cls(**values)


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict at one look, with what it was based on.

    Args:
        name: the check (one of `CHECKS`).
        status: pass / fail / inconclusive.
        mode: what evidence it used: ``paired`` (shadow), ``split`` (two arms), ``labels``, or ``none``.
        statistic: the point estimate (an odds ratio challenger/champion; for labels the recall difference).
        statistic_name: what `statistic` measures, in words.
        interval: always-valid confidence interval of the statistic at `alpha` (None bounds: unbounded).
        p_value: always-valid p-value of "no harm beyond `tolerance`" (None when not applicable).
        alpha: the share of the error budget this check spends; it fails when `p_value` <= `alpha`.
        tolerance: the largest harmless value of the statistic.
        sample_size: exposures and event counts per arm behind the verdict.
        reason: one sentence a person can act on.
        details: extra figures for the report (raw rates, quantiles of the last window).
    """

    name: str
    status: CheckStatus
    mode: str
    statistic: float | None
    statistic_name: str
    interval: tuple[float | None, float | None] | None
    p_value: float | None
    alpha: float
    tolerance: float | None
    sample_size: dict[str, int]
    reason: str
    details: dict[str, float | int | str | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": str(self.status),
            "mode": self.mode,
            "statistic": _finite_or_none(self.statistic),
            "statistic_name": self.statistic_name,
            "interval": None if self.interval is None else [_finite_or_none(v) for v in self.interval],
            "p_value": self.p_value,
            "alpha": self.alpha,
            "tolerance": self.tolerance,
            "sample_size": dict(self.sample_size),
            "reason": self.reason,
            "details": {k: _finite_or_none(v) if isinstance(v, float) else v for k, v in self.details.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckResult:
        interval = data["interval"]
        return cls(
            name=str(data["name"]),
            status=CheckStatus(data["status"]),
            mode=str(data["mode"]),
            statistic=data["statistic"],
            statistic_name=str(data["statistic_name"]),
            interval=None if interval is None else (interval[0], interval[1]),
            p_value=data["p_value"],
            alpha=float(data["alpha"]),
            tolerance=data["tolerance"],
            sample_size={str(k): int(v) for k, v in data["sample_size"].items()},
            reason=str(data["reason"]),
            details=dict(data.get("details", {})),
        )


def _finite_or_none(value: float | None) -> float | None:
    """JSON has no infinity: an unbounded interval end is written as null."""
    return None if value is None or not math.isfinite(value) else value


@dataclass
class ArmLabelTally:
    """One arm's confusion counts at the alert budget, as always-valid proportions."""

    recall: ProportionBounds = field(default_factory=ProportionBounds)  # alerted frauds / frauds
    precision: ProportionBounds = field(default_factory=ProportionBounds)  # alerted frauds / alerts
    threshold: float | None = None  # the score above which this arm alerts at the budget (latest estimate)

    def to_dict(self) -> dict[str, Any]:
        return {"recall": self.recall.to_dict(), "precision": self.precision.to_dict(), "threshold": self.threshold}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArmLabelTally:
        return cls(
            recall=ProportionBounds.from_dict(data["recall"]),
            precision=ProportionBounds.from_dict(data["precision"]),
            threshold=data["threshold"],
        )


@dataclass
class AnalysisState:
    """Everything the analysis remembers between windows; JSON-serialisable through `to_dict` / `from_dict`.

    ``evidence`` holds one `OddsRatioEvidence` per test (``errors``, ``blocks/paired``, ``blocks/split``,
    ``scores/split/0.99``, ``latency/0.5`` with its capped twin ``latency/0.5/capped`` ...); ``p_values`` the
    running minimum of each check's always-valid p-value, which never goes back up. ``started_at`` is when the
    challenger began serving (the rollout's start; else the first window's), from which the warm-up counts.
    """

    evidence: dict[str, OddsRatioEvidence] = field(default_factory=dict)
    p_values: dict[str, float] = field(default_factory=dict)
    labels: dict[str, ArmLabelTally] = field(
        default_factory=lambda: {"champion": ArmLabelTally(), "challenger": ArmLabelTally()}
    )
    windows: int = 0
    last_window_end: float | None = None
    last_details: dict[str, dict[str, float | int | str | None]] = field(default_factory=dict)
    started_at: float | None = None

    def get(self, key: str) -> OddsRatioEvidence:
        if key not in self.evidence:
            self.evidence[key] = OddsRatioEvidence()
        return self.evidence[key]

    def copy(self) -> AnalysisState:
        """An independent copy (the analysis never changes a state it was given)."""
        return AnalysisState(
            evidence={key: replace(value, loglik=value.loglik.copy()) for key, value in self.evidence.items()},
            p_values=dict(self.p_values),
            labels={
                arm: ArmLabelTally(replace(t.recall), replace(t.precision), t.threshold)
                for arm, t in self.labels.items()
            },
            windows=self.windows,
            last_window_end=self.last_window_end,
            last_details=copy.deepcopy(self.last_details),
            started_at=self.started_at,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "evidence": {key: value.to_dict() for key, value in sorted(self.evidence.items())},
            "p_values": dict(sorted(self.p_values.items())),
            "labels": {arm: tally.to_dict() for arm, tally in self.labels.items()},
            "windows": self.windows,
            "last_window_end": self.last_window_end,
            "last_details": copy.deepcopy(self.last_details),
            "started_at": self.started_at,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnalysisState:
        return cls(
            evidence={key: OddsRatioEvidence.from_dict(value) for key, value in data["evidence"].items()},
            p_values={key: float(value) for key, value in data["p_values"].items()},
            labels={arm: ArmLabelTally.from_dict(value) for arm, value in data["labels"].items()},
            windows=int(data["windows"]),
            last_window_end=data["last_window_end"],
            last_details=copy.deepcopy(data.get("last_details", {})),
            started_at=data.get("started_at"),
        )


def _add_split(
    state: AnalysisState, key: str, challenger_events: int, challenger: int, champion_events: int, champion: int
) -> None:
    loglik = hypergeometric_loglik(challenger_events, challenger, champion, challenger_events + champion_events)
    state.get(key).add(
        loglik,
        challenger_events=challenger_events,
        champion_events=champion_events,
        challenger=challenger,
        champion=champion,
    )


def _add_paired(
    state: AnalysisState, key: str, champion_only: int, challenger_only: int, pairs: int, champion_total: int
) -> None:
    loglik = binomial_loglik(challenger_only, champion_only + challenger_only, 0.5)
    state.get(key).add(
        loglik,
        challenger_events=challenger_only,
        champion_events=champion_only,
        challenger=pairs,
        champion=pairs,
        champion_baseline=champion_total,
    )


def _discounted_latencies(latencies: FloatArray, config: AnalysisConfig) -> FloatArray:
    """Challenger latencies with the harmless slowdown taken off, so only a larger one counts as harm.

    x becomes min(x / (1 + ratio), x - ms): above a champion's y exactly when x > y + max(ratio * y, ms), a
    slowdown beyond both floors. Increasing in x, so a slower challenger stays slower.
    """
    discounted = np.minimum(latencies / (1.0 + config.latency_tolerance_ratio), latencies - config.latency_tolerance_ms)
    return np.asarray(np.maximum(discounted, 0.0), dtype=np.float64)


def _update_labels(state: AnalysisState, window: Window, config: AnalysisConfig) -> None:
    """Fold matured labels into each arm's recall and precision at the alert budget."""
    arms: dict[str, tuple[ArmSample, ArmLabels | None]] = {
        "champion": (window.champion, None if window.labels is None else window.labels.champion),
        "challenger": (window.challenger, None if window.labels is None else window.labels.challenger),
    }
    for arm, (sample, labels) in arms.items():
        tally = state.labels[arm]
        # The budget's threshold comes from all the arm scored in the window, not from the labelled rows alone:
        # blocked transactions seldom get a label, so labelled rows under-represent the top scores.
        if sample.scores.size >= math.ceil(1.0 / config.alert_budget):
            tally.threshold = float(np.quantile(sample.scores, 1.0 - config.alert_budget))
        if labels is None or labels.y_true.size == 0:
            continue
        if tally.threshold is None:
            tally.threshold = float(np.quantile(labels.scores, 1.0 - config.alert_budget))
        alerted = labels.scores > tally.threshold
        fraud = labels.y_true == 1
        tally.recall.add(int((alerted & fraud).sum()), int(fraud.sum()))
        tally.precision.add(int((alerted & fraud).sum()), int(alerted.sum()))


Details = dict[str, dict[str, float | int | str | None]]


def _update_operational(new: AnalysisState, window: Window, config: AnalysisConfig, details: Details) -> None:
    """Errors and latency of the two arms in the window."""
    champion, challenger = window.champion, window.challenger
    details["errors"] = {
        "challenger_error_rate": challenger.errors / challenger.requests if challenger.requests else None,
        "champion_error_rate": champion.errors / champion.requests if champion.requests else None,
    }
    if window.shadow and not config.shadow_operational:
        return
    _add_split(new, "errors", challenger.errors, challenger.requests, champion.errors, champion.requests)
    if not window.shadow or config.shadow_latency:
        _update_latency(new, window, config, details)


_LATENCY_NULL: Final[int] = grid_index(1.0)
"""The latency test's null: discounted challenger latencies no more often above a pooled quantile (odds 1)."""


def _update_latency(new: AnalysisState, window: Window, config: AnalysisConfig, details: Details) -> None:
    """Exceedances of the pooled latency quantiles, once the warm-up is over; each window's weight capped.

    Per quantile two evidences: the request-level likelihood (``latency/q``: the statistic and interval the
    report shows) and the same with each window's likelihood ratio against the null capped at
    ``latency_window_cap`` (``latency/q/capped``: what the test uses). Lowering a likelihood ratio keeps its
    expectation under the null at most 1, so the capped product is still a test supermartingale.
    """
    champion, challenger = window.champion, window.challenger
    if not (challenger.latencies_ms.size and champion.latencies_ms.size):
        return
    started = new.started_at if new.started_at is not None else window.start
    warm_from = started + config.warmup_seconds
    summary: dict[str, float | int | str | None] = {
        f"{arm}_p{round(q * 100)}_ms": float(np.quantile(sample.latencies_ms, q))
        for arm, sample in (("challenger", challenger), ("champion", champion))
        for q in (0.5, 0.9, 0.99)
    }
    if window.start < warm_from - 1e-9:
        details["latency"] = {**summary, "warm_from": warm_from}
        return
    discounted = _discounted_latencies(challenger.latencies_ms, config)
    n_h, n_c = int(discounted.size), int(champion.latencies_ms.size)
    log_cap = math.log(config.latency_window_cap)
    for q in config.latency_quantiles:
        above_h, above_c, threshold = split_counts(discounted, champion.latencies_ms, q)
        loglik = hypergeometric_loglik(above_h, n_h, n_c, above_h + above_c)
        counts = {"challenger_events": above_h, "champion_events": above_c, "challenger": n_h, "champion": n_c}
        new.get(f"latency/{q}").add(loglik, **counts)
        new.get(f"latency/{q}/capped").add(np.minimum(loglik - loglik[_LATENCY_NULL], log_cap), **counts)
        summary[f"pooled_p{q * 100:g}_ms"] = threshold
    details["latency"] = summary


def _update_decisions(new: AnalysisState, window: Window, details: Details) -> None:
    """Blocks and reviews: discordant pairs in shadow, the split between arms otherwise."""
    champion, challenger = window.champion, window.challenger
    if window.shadow and window.paired_decisions is not None:
        champion_codes, challenger_codes = window.paired_decisions
        for check, code in (("blocks", DECISION_CODES["block"]), ("reviews", DECISION_CODES["review"])):
            only_c, only_h = paired_discordance(champion_codes == code, challenger_codes == code)
            champion_total = int((champion_codes == code).sum())
            _add_paired(new, f"{check}/paired", only_c, only_h, int(champion_codes.size), champion_total)
            details[check] = {"champion_only": only_c, "challenger_only": only_h, "pairs": int(champion_codes.size)}
        return
    _add_split(new, "blocks/split", challenger.blocks, challenger.rows, champion.blocks, champion.rows)
    _add_split(new, "reviews/split", challenger.reviews, challenger.rows, champion.reviews, champion.rows)
    for check, h, c in (
        ("blocks", challenger.blocks, champion.blocks),
        ("reviews", challenger.reviews, champion.reviews),
    ):
        details[check] = {
            "challenger_rate": h / challenger.rows if challenger.rows else None,
            "champion_rate": c / champion.rows if champion.rows else None,
        }


def _update_scores(new: AnalysisState, window: Window, config: AnalysisConfig, details: Details) -> None:
    """The upper tail of the scores: paired in shadow, the split between arms otherwise."""
    champion, challenger = window.champion, window.challenger
    if window.shadow and window.paired_scores is not None:
        champion_scores, challenger_scores = window.paired_scores
        for q in config.score_quantiles:
            only_c, only_h = paired_tail_discordance(champion_scores, challenger_scores, q)
            pairs = int(champion_scores.size)
            _add_paired(new, f"scores/paired/{q}", only_c, only_h, pairs, round(pairs * (1 - q)))
    elif challenger.scores.size and champion.scores.size:
        n_h, n_c = int(challenger.scores.size), int(champion.scores.size)
        for q in config.score_quantiles:
            above_h, above_c, _ = split_counts(challenger.scores, champion.scores, q)
            _add_split(new, f"scores/split/{q}", above_h, n_h, above_c, n_c)
    if challenger.scores.size and champion.scores.size:
        details["scores"] = {
            "challenger_p99": float(np.quantile(challenger.scores, 0.99)),
            "champion_p99": float(np.quantile(champion.scores, 0.99)),
            "challenger_mean": float(challenger.scores.mean()),
            "champion_mean": float(champion.scores.mean()),
        }


def _update_sample_ratio(new: AnalysisState, window: Window, details: Details) -> None:
    """The challenger's share of requests against the configured weight (weighted steps only)."""
    if window.shadow or not 0.0 < window.expected_challenger_share < 1.0:
        return
    champion, challenger = window.champion, window.challenger
    total = challenger.requests + champion.requests
    loglik = binomial_loglik(challenger.requests, total, window.expected_challenger_share)
    new.get("sample_ratio").add(
        loglik,
        challenger_events=challenger.requests,
        champion_events=champion.requests,
        challenger=challenger.requests,
        champion=champion.requests,
    )
    details["sample_ratio"] = {
        "observed_share": challenger.requests / total if total else None,
        "expected_share": window.expected_challenger_share,
    }


def update(state: AnalysisState, window: Window, config: AnalysisConfig) -> AnalysisState:
    """Fold one window into a copy of the analysis state (the given state is left as it was).

    Raises:
        ValueError: the window starts before the previous one ended (a replayed or reordered window).
    """
    if state.last_window_end is not None and window.start < state.last_window_end - 1e-6:
        raise ValueError(
            f"window start {window.start} is before the previous window's end {state.last_window_end}: "
            "windows must be fed in time order, once each"
        )
    new = state.copy()
    if new.started_at is None:  # no rollout start given: the challenger served from the first window on
        new.started_at = window.start
    details: Details = {}
    _update_operational(new, window, config, details)
    _update_decisions(new, window, details)
    _update_scores(new, window, config, details)
    _update_sample_ratio(new, window, details)
    _update_labels(new, window, config)
    _record_p_values(new, config)
    new.windows += 1
    new.last_window_end = window.end
    new.last_details = details
    return new


def _score_log_mixture(state: AnalysisState, mode: str, config: AnalysisConfig) -> float | None:
    keys = [f"scores/{mode}/{q}" for q in config.score_quantiles]
    if not all(key in state.evidence for key in keys):
        return None
    return log_mean([state.evidence[key].log_mixture(config.score_tolerance) for key in keys])


def _log_mixtures(state: AnalysisState, config: AnalysisConfig) -> dict[str, float]:
    """log M of every check that has evidence: the product over its modes of each mode's mixture."""
    result: dict[str, float] = {}
    if "errors" in state.evidence:
        result["errors"] = state.evidence["errors"].log_mixture(config.error_tolerance)
    latency = _latency_log_mixtures(state, config)
    if latency:
        result["latency"] = log_mean(list(latency.values()))
    for check in ("blocks", "reviews"):
        keys = [f"{check}/{mode}" for mode in ("paired", "split") if f"{check}/{mode}" in state.evidence]
        if keys:
            result[check] = sum(state.evidence[key].log_mixture(config.decision_tolerance) for key in keys)
    scores = [s for s in (_score_log_mixture(state, mode, config) for mode in ("paired", "split")) if s is not None]
    if scores:
        result["scores"] = sum(scores)
    if "sample_ratio" in state.evidence:
        evidence = state.evidence["sample_ratio"]
        result["sample_ratio"] = log_mean(
            [
                evidence.log_mixture(config.sample_ratio_tolerance, "greater"),
                evidence.log_mixture(1.0 / config.sample_ratio_tolerance, "less"),
            ]
        )
    return result


def _latency_log_mixtures(state: AnalysisState, config: AnalysisConfig) -> dict[float, float]:
    """log M of each latency quantile's capped evidence (the tolerance is taken off the latencies: null 1)."""
    keys = {q: f"latency/{q}/capped" for q in config.latency_quantiles}
    if not all(key in state.evidence for key in keys.values()):
        return {}
    return {q: state.evidence[key].log_mixture(1.0) for q, key in keys.items()}


def _record_p_values(state: AnalysisState, config: AnalysisConfig) -> None:
    for key, log_m in _log_mixtures(state, config).items():
        p_now = math.exp(-max(0.0, log_m))
        state.p_values[key] = min(state.p_values.get(key, 1.0), p_now)


_STATISTIC_NAMES: Final[dict[str, str]] = {
    "errors": "odds ratio of a failed request, challenger / champion",
    "latency": "odds ratio of a request above a pooled latency quantile (details: which), tolerance taken off",
    "blocks": "odds ratio of a block, challenger / champion",
    "reviews": "odds ratio of a review, challenger / champion",
    "scores": "odds ratio of a score above the pooled upper quantile, challenger / champion",
    "sample_ratio": "odds ratio of the observed vs the configured challenger share",
    "labels": "recall at the alert budget, challenger - champion",
}


def _odds_result(
    name: str,
    state: AnalysisState,
    config: AnalysisConfig,
    *,
    mode: str,
    evidence_key: str,
    tolerance: float,
    what: str,
) -> CheckResult:
    """The verdict of an odds-ratio check from its current mode's evidence and its always-valid p-value."""
    alpha = config.check_alpha(name)
    evidence = state.evidence.get(evidence_key, OddsRatioEvidence())
    p_value = state.p_values.get(name)
    low, high = evidence.confidence_sequence(alpha)
    n = evidence.challenger_exposure
    detectable = None
    if name in RARE_EVENT_CHECKS and evidence.windows:
        # Rare events: how large a harm this much evidence could have shown, so a pass is read for what it is.
        detectable = evidence.detectable_ratio(alpha, tolerance, paired=mode == "paired")
    # Shadow pairs every transaction, the cheapest evidence there is: decisions stay there until it has power.
    underpowered = (
        mode == "paired"
        and name in SHADOW_POWER_CHECKS
        and (detectable is None or detectable > config.shadow_detectable_ratio * (1 + 1e-9))
    )
    if p_value is not None and p_value <= alpha:
        status = CheckStatus.FAIL
        reason = (
            f"{what} is worse than the champion's beyond the tolerance (always-valid p={p_value:.2g} <= {alpha:.2g})"
        )
    elif n >= config.min_samples and not underpowered:
        status = CheckStatus.PASS
        reason = f"no harm found on {n} challenger observations ({mode}); the interval bounds what could hide"
    elif n >= config.min_samples:
        status = CheckStatus.INCONCLUSIVE
        could = "no increase at all" if detectable is None else f"{detectable:.3g}x the champion's odds"
        reason = (
            f"{n} paired transactions could catch {could} so far; shadow goes on until they could catch "
            f"{config.shadow_detectable_ratio:g}x (shadow_detectable_ratio)"
        )
    else:
        status = CheckStatus.INCONCLUSIVE
        reason = f"{n} challenger observations ({mode}) so far, {config.min_samples} needed"
    details = dict(state.last_details.get(name, {}))
    if name in RARE_EVENT_CHECKS and evidence.windows:
        details["detectable_ratio"] = detectable
        if status is CheckStatus.PASS:
            reason += (
                f"; it would have caught about {detectable:.3g}x the champion's odds"
                if detectable is not None
                else "; the champion's events are still too few to have caught even a large increase"
            )
    return CheckResult(
        name=name,
        status=status,
        mode=mode,
        statistic=evidence.estimate() if evidence.windows else None,
        statistic_name=_STATISTIC_NAMES[name],
        interval=(low, high) if evidence.windows else None,
        p_value=p_value,
        alpha=alpha,
        tolerance=float(GRID[grid_index(tolerance)]),
        sample_size=evidence.sample(),
        reason=reason,
        details=details,
    )


def _latency_result(state: AnalysisState, config: AnalysisConfig) -> CheckResult:
    """The latency verdict: the test mixes the quantiles; the statistic shown is the quantile with most evidence.

    It passes only after `AnalysisConfig.latency_windows_to_fail` counted windows: with each window's weight
    capped, fewer could not have caught even a large slowdown.
    """
    mixtures = _latency_log_mixtures(state, config)
    quantiles = config.latency_quantiles
    shown = max(mixtures, key=lambda q: mixtures[q]) if mixtures else quantiles[len(quantiles) // 2]
    what = (
        f"the challenger's latency (beyond +{config.latency_tolerance_ratio:.0%} and "
        f"+{config.latency_tolerance_ms:g} ms)"
    )
    result = _odds_result(
        "latency", state, config, mode="split", evidence_key=f"latency/{shown}", tolerance=1.0, what=what
    )
    counted = state.evidence[f"latency/{shown}"].windows if f"latency/{shown}" in state.evidence else 0
    needed = config.latency_windows_to_fail()
    details: dict[str, float | int | str | None] = {**result.details, "quantile": shown, "windows": counted}
    status, reason = result.status, result.reason
    warm_from = details.get("warm_from")
    if status is not CheckStatus.FAIL and counted == 0 and warm_from is not None and state.started_at is not None:
        reason = f"warming up: latency counts windows from {float(warm_from) - state.started_at:g} s after the start"
    elif status is not CheckStatus.FAIL and counted == 0 and not config.shadow_latency:
        reason = "not judged on shadow calls (shadow_latency off): from the first weighted step on"
    elif status is CheckStatus.PASS and counted < needed:
        status = CheckStatus.INCONCLUSIVE
        reason = (
            f"{counted} windows counted, {needed} needed (one window weighs at most x{config.latency_window_cap:g})"
        )
    return replace(result, status=status, reason=reason, details=details)


def _labels_result(state: AnalysisState, config: AnalysisConfig) -> CheckResult:
    alpha = config.check_alpha("labels")
    champion, challenger = state.labels["champion"], state.labels["challenger"]
    # Each arm's two-sided interval at alpha leaves alpha/2 in each tail, so each one-sided bound of the
    # difference (the lower one decides pass, the upper one fail) holds with probability 1 - alpha (union bound).
    low_h, high_h = challenger.recall.interval(alpha)
    low_c, high_c = champion.recall.interval(alpha)
    frauds_h, frauds_c = challenger.recall.trials, champion.recall.trials
    estimate_h, estimate_c = challenger.recall.estimate, champion.recall.estimate
    statistic = None if estimate_h is None or estimate_c is None else estimate_h - estimate_c
    interval = (low_h - high_c, high_h - low_c)
    if frauds_h == 0 or frauds_c == 0:
        status, reason = CheckStatus.INCONCLUSIVE, "no labelled frauds yet for both arms: the label check cannot speak"
        interval_out: tuple[float | None, float | None] | None = None
    elif interval[1] < -config.recall_tolerance:
        status = CheckStatus.FAIL
        reason = f"challenger recall at the {config.alert_budget:.2%} alert budget is lower beyond the tolerance"
        interval_out = interval
    elif min(frauds_h, frauds_c) >= config.min_labelled_frauds and interval[0] >= -config.recall_tolerance:
        status = CheckStatus.PASS
        reason = f"recall at the alert budget is no worse than {config.recall_tolerance:.0%} below the champion's"
        interval_out = interval
    else:
        status = CheckStatus.INCONCLUSIVE
        reason = (
            f"{frauds_h} / {frauds_c} labelled frauds (challenger / champion): "
            f"not yet enough to bound the recall drop by {config.recall_tolerance:.0%}"
        )
        interval_out = interval
    return CheckResult(
        name="labels",
        status=status,
        mode="labels",
        statistic=statistic,
        statistic_name=_STATISTIC_NAMES["labels"],
        interval=interval_out,
        p_value=None,
        alpha=alpha,
        tolerance=-config.recall_tolerance,
        sample_size={
            "challenger": frauds_h,
            "champion": frauds_c,
            "challenger_alerts": challenger.precision.trials,
            "champion_alerts": champion.precision.trials,
        },
        reason=reason,
        details={
            "challenger_recall": estimate_h,
            "champion_recall": estimate_c,
            "challenger_precision": challenger.precision.estimate,
            "champion_precision": champion.precision.estimate,
            "alert_budget": config.alert_budget,
        },
    )


def judge(state: AnalysisState, config: AnalysisConfig, *, shadow: bool) -> dict[str, CheckResult]:
    """Every check's verdict now. `shadow` says which mode the current phase gives evidence in."""
    mode = "paired" if shadow else "split"
    results: dict[str, CheckResult] = {
        "errors": _odds_result(
            "errors", state, config, mode="split", evidence_key="errors",
            tolerance=config.error_tolerance, what="the challenger's error rate",
        ),
        "latency": _latency_result(state, config),
    }  # fmt: skip
    for check, what in (("blocks", "the challenger's block rate"), ("reviews", "the challenger's review rate")):
        results[check] = _odds_result(
            check, state, config, mode=mode, evidence_key=f"{check}/{mode}",
            tolerance=config.decision_tolerance, what=what,
        )  # fmt: skip
    top = max(config.score_quantiles)
    results["scores"] = _odds_result(
        "scores", state, config, mode=mode, evidence_key=f"scores/{mode}/{top}",
        tolerance=config.score_tolerance, what="the challenger's upper score tail",
    )  # fmt: skip
    if shadow:
        results["sample_ratio"] = CheckResult(
            name="sample_ratio",
            status=CheckStatus.INCONCLUSIVE,
            mode="none",
            statistic=None,
            statistic_name=_STATISTIC_NAMES["sample_ratio"],
            interval=None,
            p_value=state.p_values.get("sample_ratio"),
            alpha=config.check_alpha("sample_ratio"),
            tolerance=config.sample_ratio_tolerance,
            sample_size={},
            reason="no split to check in shadow: every request goes to the champion",
        )
    else:
        results["sample_ratio"] = _odds_result(
            "sample_ratio", state, config, mode="split", evidence_key="sample_ratio",
            tolerance=config.sample_ratio_tolerance, what="the challenger's share of requests",
        )  # fmt: skip
        if results["sample_ratio"].status is CheckStatus.FAIL:
            results["sample_ratio"] = _replace_reason(
                results["sample_ratio"],
                "the observed split differs from the configured weight (sample-ratio mismatch): the routing or "
                "the telemetry drops or misroutes requests, so no comparison can be trusted",
            )
    results["labels"] = _labels_result(state, config)
    return results


def _replace_reason(result: CheckResult, reason: str) -> CheckResult:
    return CheckResult(**{**result.__dict__, "reason": f"{reason} (p={result.p_value:.2g})"})


def analyse(
    state: AnalysisState, window: Window, config: AnalysisConfig
) -> tuple[AnalysisState, dict[str, CheckResult]]:
    """Fold a window in and judge every check: the one call a rollout makes per window."""
    new = update(state, window, config)
    return new, judge(new, config, shadow=window.shadow)
