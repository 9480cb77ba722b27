"""Anytime-valid sequential tests for comparing a challenger with the champion, window after window.

A canary is looked at every analysis interval, and a test repeated at every look rejects a true null far more
often than its nominal level (the benchmark `benchmarks/canary_analysis.py` measures it). Every test here is a
*test martingale*: a product over windows of per-window likelihood ratios, each with expectation at most 1 when
the challenger is no worse than the champion, mixed over a grid of alternatives. By Ville's inequality the
probability that it *ever* exceeds 1/alpha is at most alpha, however many looks are taken and whenever the
rollout stops (Johari, Pekelis & Walsh, "Always Valid Inference", arXiv 1512.04922; Howard et al., AoS 2021).

Every comparison is reduced to one question: *of the events seen in a window, how many fell on the challenger's
side, given how much exposure each arm had?* Events are errors, blocks, reviews, latencies above the window's
pooled p99, scores above the window's pooled upper quantile. Conditioning on the total number of events removes
everything the two arms share in that window (a load spike, a fraud wave, a quiet night), so the null is exact
without knowing the champion's rate:

- two independent arms (weighted steps): given the pooled window, the challenger's count of events is
  hypergeometric under "no difference" (a permutation argument), and Fisher's noncentral hypergeometric with odds
  ratio theta under the alternatives. Exact at any rate, however rare (0.04 % blocks included).
- paired rows (shadow: both models scored the same transactions): only discordant pairs carry information; under
  "no difference" each falls on the challenger's side with probability 1/2 (McNemar's / the sign test).
- a split against a configured share (sample-ratio mismatch): binomial with the configured share.

All three share one parametrisation, the odds ratio theta of an event falling on the challenger's side relative
to the null, so one `OddsRatioEvidence` (the log-likelihood of the stream on a fixed grid of theta) serves every
check, is additive across windows and serialises to a short list of floats. From it come the always-valid
p-value of "theta <= tolerance" (one-sided: only harm fails) and a confidence sequence for theta.

`ProportionBounds` gives an always-valid interval for a single proportion (recall and precision of the label
gate), by the beta-binomial mixture martingale.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from scipy.special import betaln, gammaln

FloatArray = npt.NDArray[np.float64]

GRID_LOG2: Final[FloatArray] = np.arange(-24, 25, dtype=np.float64) / 4.0
"""log2 of the odds ratios the evidence is kept for: 2^-6 .. 2^6 in quarter steps (49 points, ratio 1.19)."""
GRID: Final[FloatArray] = np.exp2(GRID_LOG2)
_LOG_GRID: Final[FloatArray] = np.log(GRID)

PRIOR_SD_LOG: Final[float] = math.log(8.0)
"""Spread of the mixing distribution over log odds ratios beyond the tolerance: two thirds of the prior mass on
effects up to 8x the tolerance, and enough beyond for rare events that all land on one side (a broken block
threshold in shadow gives challenger-only blocks and no champion-only ones)."""


def logsumexp(values: FloatArray, axis: int | None = None) -> Any:
    """log(sum(exp(values))) without overflow; scipy's version costs ~1 ms of dispatch per call, this ~10 us."""
    peak = np.max(values, axis=axis, keepdims=True)
    if not np.isfinite(peak).all():
        peak = np.where(np.isfinite(peak), peak, 0.0)
    total = np.log(np.sum(np.exp(values - peak), axis=axis, keepdims=True)) + peak
    return total.item() if axis is None else np.squeeze(total, axis=axis)


def grid_index(ratio: float) -> int:
    """The grid point nearest to an odds ratio (tolerances are rounded to the grid)."""
    if ratio <= 0:
        raise ValueError(f"odds ratio must be > 0, got {ratio}")
    return int(np.argmin(np.abs(GRID_LOG2 - math.log2(ratio))))


def _log_choose(n: FloatArray | float, k: FloatArray) -> FloatArray:
    return np.asarray(gammaln(np.asarray(n) + 1) - gammaln(k + 1) - gammaln(np.asarray(n) - k + 1), dtype=np.float64)


def hypergeometric_loglik(x: int, n_challenger: int, n_champion: int, events: int) -> FloatArray:
    """Log-likelihood on the grid of Fisher's noncentral hypergeometric: `x` of `events` fell on the challenger.

    Up to a constant that does not depend on theta (only differences across the grid are used).

    Args:
        x: events on the challenger's side.
        n_challenger: challenger's exposure (requests or rows) in the window.
        n_champion: champion's exposure in the window.
        events: events in both arms together.
    """
    if events == 0 or n_challenger == 0 or n_champion == 0:
        return np.zeros_like(GRID)
    low, high = max(0, events - n_champion), min(events, n_challenger)
    support = np.arange(low, high + 1, dtype=np.float64)
    base = _log_choose(float(n_challenger), support) + _log_choose(float(n_champion), events - support)
    # normaliser for every theta at once: logsumexp over the support of base + k log(theta)
    normaliser = logsumexp(base[None, :] + support[None, :] * _LOG_GRID[:, None], axis=1)
    return np.asarray(x * _LOG_GRID - normaliser, dtype=np.float64)


def binomial_loglik(x: int, n: int, share: float) -> FloatArray:
    """Log-likelihood on the grid of `x` of `n` events on the challenger when the null share is `share`.

    Under theta the share is theta*share / (theta*share + 1 - share): the odds are multiplied by theta.
    """
    if n == 0:
        return np.zeros_like(GRID)
    if not 0.0 < share < 1.0:
        raise ValueError(f"share must lie strictly between 0 and 1, got {share}")
    log_odds = math.log(share / (1.0 - share)) + _LOG_GRID
    # x log p + (n - x) log(1 - p) with p = sigmoid(log_odds), computed stably
    log_p = -np.logaddexp(0.0, -log_odds)
    log_q = -np.logaddexp(0.0, log_odds)
    return np.asarray(x * log_p + (n - x) * log_q, dtype=np.float64)


@functools.cache
def _log_mixture_weights(null_index: int, side: str) -> tuple[npt.NDArray[np.intp], FloatArray]:
    """Half-normal prior on log(theta / theta_null) over the grid points strictly on `side` of the null.

    Returns the indices of those grid points and the log of their weights (summing to 1).
    """
    distance = _LOG_GRID - _LOG_GRID[null_index]
    indices = np.flatnonzero(distance > 0 if side == "greater" else distance < 0)
    log_weights = -0.5 * (distance[indices] / PRIOR_SD_LOG) ** 2
    return indices, np.asarray(log_weights - logsumexp(log_weights), dtype=np.float64)


def _two_sided_log_weights() -> FloatArray:
    """Row b: log weights of every other grid point a as alternatives to theta_b (normal prior on the distance)."""
    distance = _LOG_GRID[None, :] - _LOG_GRID[:, None]
    log_weights = -0.5 * (distance / PRIOR_SD_LOG) ** 2
    np.fill_diagonal(log_weights, -np.inf)
    return np.asarray(log_weights - logsumexp(log_weights, axis=1)[:, None], dtype=np.float64)


_TWO_SIDED_LOG_WEIGHTS: Final[FloatArray] = _two_sided_log_weights()


@dataclass
class OddsRatioEvidence:
    """The accumulated log-likelihood of one comparison on the odds-ratio grid, plus raw totals for the report.

    Mutable on purpose: the analysis updates it window after window and serialises it with `to_dict`.
    """

    loglik: FloatArray = field(default_factory=lambda: np.zeros_like(GRID))
    challenger_events: int = 0
    champion_events: int = 0
    challenger_exposure: int = 0
    champion_exposure: int = 0
    windows: int = 0
    champion_baseline: int = 0
    """The champion's own events over the exposure: equal to `champion_events` for split evidence; for paired
    evidence its events among all pairs (concordant ones included), the base rate a harm would multiply."""

    def add(
        self,
        loglik: FloatArray,
        *,
        challenger_events: int,
        champion_events: int,
        challenger: int,
        champion: int,
        champion_baseline: int | None = None,
    ) -> None:
        """Fold one window's evidence in."""
        self.loglik = self.loglik + loglik
        self.challenger_events += int(challenger_events)
        self.champion_events += int(champion_events)
        self.champion_baseline += int(champion_events if champion_baseline is None else champion_baseline)
        self.challenger_exposure += int(challenger)
        self.champion_exposure += int(champion)
        self.windows += 1

    def log_mixture(self, null_ratio: float, side: str = "greater") -> float:
        """log M: the mixture likelihood ratio of the alternatives on `side` of `null_ratio` against it."""
        index = grid_index(null_ratio)
        indices, log_weights = _log_mixture_weights(index, side)
        if indices.size == 0:
            return 0.0
        return float(logsumexp(self.loglik[indices] - self.loglik[index] + log_weights))

    def sample(self) -> dict[str, int]:
        """Exposure and events of both arms, for reports."""
        return {
            "challenger": self.challenger_exposure,
            "champion": self.champion_exposure,
            "challenger_events": self.challenger_events,
            "champion_events": self.champion_events,
        }

    def confidence_sequence(self, alpha: float) -> tuple[float, float]:
        """Always-valid (1 - alpha) interval for the odds ratio: grid points a two-sided mixture test keeps.

        Returns (low, high); 0 and inf mean the interval reaches beyond the grid on that side.
        """
        log_m = logsumexp(self.loglik[None, :] - self.loglik[:, None] + _TWO_SIDED_LOG_WEIGHTS, axis=1)
        kept = [int(i) for i in np.flatnonzero(log_m < math.log(1.0 / alpha))]
        if not kept:  # every grid point rejected: the truth lies between two grid points; report the best one
            best = int(np.argmax(self.loglik))
            kept = [best]
        low = 0.0 if kept[0] == 0 else float(GRID[kept[0]])
        high = math.inf if kept[-1] == GRID.size - 1 else float(GRID[kept[-1]])
        return low, high

    def detectable_ratio(self, alpha: float, tolerance: float, *, paired: bool) -> float | None:
        """The smallest odds ratio this much exposure would have caught at the champion's observed rate.

        An approximation for reports, not a test: the exposure so far is treated as one window whose counts are
        their expected values under a challenger R times worse (paired: R times the champion's events, on top
        of the champion-only ones), and R climbs the grid until that evidence reaches 1/alpha. None: not even
        the largest ratio on the grid would have been caught (the champion's events are too few).
        """
        ratios = GRID[tolerance * (1 + 1e-9) < GRID]
        if paired:
            x: FloatArray = np.round(self.champion_events + (ratios - 1.0) * self.champion_baseline)
            n, share = self.champion_events + x, 0.5
        else:
            n_h, n_c = self.challenger_exposure, self.champion_exposure
            if n_h == 0 or n_c == 0:
                return None
            x = np.asarray(
                np.round(np.minimum(float(n_h), n_h * self.champion_baseline / n_c * ratios)), dtype=np.float64
            )
            n, share = x + self.champion_baseline, n_h / (n_h + n_c)
        # one hypothetical window per candidate ratio: a row of log-likelihoods on the grid for each
        log_odds = math.log(share / (1.0 - share)) + _LOG_GRID
        log_p, log_q = -np.logaddexp(0.0, -log_odds), -np.logaddexp(0.0, log_odds)
        loglik = x[:, None] * log_p[None, :] + (n - x)[:, None] * log_q[None, :]
        null = grid_index(tolerance)
        indices, log_weights = _log_mixture_weights(null, "greater")
        log_m = logsumexp(loglik[:, indices] - loglik[:, [null]] + log_weights[None, :], axis=1)
        caught = np.flatnonzero(log_m >= math.log(1.0 / alpha))
        return float(ratios[caught[0]]) if caught.size else None

    def estimate(self) -> float:
        """Maximum-likelihood odds ratio on the grid (1.0 when nothing was seen)."""
        if not np.any(self.loglik):
            return 1.0
        return float(GRID[int(np.argmax(self.loglik))])

    def to_dict(self) -> dict[str, Any]:
        return {
            "loglik": self.loglik.tolist(),  # exact: JSON keeps a float64 through repr
            "challenger_events": self.challenger_events,
            "champion_events": self.champion_events,
            "challenger_exposure": self.challenger_exposure,
            "champion_exposure": self.champion_exposure,
            "windows": self.windows,
            "champion_baseline": self.champion_baseline,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OddsRatioEvidence:
        loglik = np.asarray(data["loglik"], dtype=np.float64)
        if loglik.shape != GRID.shape:
            raise ValueError(f"loglik: expected {GRID.size} grid values, got {loglik.size}")
        return cls(
            loglik=loglik,
            challenger_events=int(data["challenger_events"]),
            champion_events=int(data["champion_events"]),
            challenger_exposure=int(data["challenger_exposure"]),
            champion_exposure=int(data["champion_exposure"]),
            windows=int(data["windows"]),
            champion_baseline=int(data.get("champion_baseline", data["champion_events"])),
        )


def log_mean(log_values: list[float]) -> float:
    """log of the mean of exp(values): the mixture of several test martingales, itself a test martingale."""
    return float(logsumexp(np.asarray(log_values, dtype=np.float64))) - math.log(len(log_values))


def split_counts(challenger: FloatArray, champion: FloatArray, quantile: float) -> tuple[int, int, float]:
    """How many values of each arm lie strictly above the pooled `quantile` of both arms (and that threshold).

    The threshold is a symmetric function of the pooled values, so under "same distribution" the challenger's
    count is exactly hypergeometric given the total: the basis of the latency and score-tail tests.
    """
    pooled = np.concatenate([challenger, champion])
    if pooled.size == 0:
        return 0, 0, math.nan
    threshold = float(np.quantile(pooled, quantile))
    return int((challenger > threshold).sum()), int((champion > threshold).sum()), threshold


def paired_discordance(champion: npt.NDArray[np.bool_], challenger: npt.NDArray[np.bool_]) -> tuple[int, int]:
    """(champion-only, challenger-only) counts of an event flagged on the same rows by both models."""
    return int((champion & ~challenger).sum()), int((challenger & ~champion).sum())


def paired_tail_discordance(champion: FloatArray, challenger: FloatArray, quantile: float) -> tuple[int, int]:
    """Discordant pairs around the pooled `quantile` of both models' scores of the same rows.

    Swapping the two scores of a pair leaves the pooled values, hence the threshold, unchanged: under "the two
    models are exchangeable" each discordant pair is challenger-only with probability exactly 1/2.
    """
    if champion.size == 0:
        return 0, 0
    threshold = float(np.quantile(np.concatenate([champion, challenger]), quantile))
    return paired_discordance(champion > threshold, challenger > threshold)


@dataclass
class ProportionBounds:
    """Successes out of trials, with an always-valid interval (beta-binomial mixture, Beta(1/2, 1/2) prior)."""

    successes: int = 0
    trials: int = 0

    def add(self, successes: int, trials: int) -> None:
        if not 0 <= successes <= trials:
            raise ValueError(f"successes {successes} must lie between 0 and trials {trials}")
        self.successes += int(successes)
        self.trials += int(trials)

    def interval(self, alpha: float) -> tuple[float, float]:
        """The p for which the mixture martingale B(a+x, b+n-x)/B(a,b) / (p^x (1-p)^(n-x)) stays below 1/alpha."""
        if self.trials == 0:
            return 0.0, 1.0
        x, n = self.successes, self.trials
        p = np.linspace(0.0, 1.0, 2001)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_null = x * np.log(p) + (n - x) * np.log1p(-p)
        log_null = np.where(np.isnan(log_null), -np.inf, log_null)
        log_m = betaln(0.5 + x, 0.5 + n - x) - betaln(0.5, 0.5) - log_null
        kept = p[log_m < math.log(1.0 / alpha)]
        if kept.size == 0:
            estimate = x / n
            return estimate, estimate
        return float(kept.min()), float(kept.max())

    @property
    def estimate(self) -> float | None:
        return self.successes / self.trials if self.trials else None

    def to_dict(self) -> dict[str, int]:
        return {"successes": self.successes, "trials": self.trials}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProportionBounds:
        return cls(successes=int(data["successes"]), trials=int(data["trials"]))
