"""Two-sample tests for drift on fraud traffic: valid at 200 rows and at a million, against a finite reference.

Every test here compares a window with a *sample* (the reference), so each accounts for the reference's own
noise: contingency tables rather than goodness of fit against reference proportions (the bug behind Evidently's
chi-square alarms against a small reference), and exact or Monte-Carlo-exact p-values where expected counts are
small (a 200-row window holds about one DEBIT and a block rate of 0.04 % holds none). The functions are plain
numpy/scipy on counts, so a million-row window costs one ``searchsorted`` and one ``bincount`` per column.

Reference rows may carry weights (post-stratification by hour of day, see `monitoring.drift`). A weighted
reference enters the tests as counts on its effective sample size (Kish), the size of an unweighted sample
with the same variance: weighting never makes the reference look more precise than it is.

Each test also answers a second question: is the difference *larger than a floor* (a PSI, or a rate ratio)?
At 100k rows every real difference is significant, including the month-to-month variation of healthy traffic,
and a plain "significant and the observed effect passes the floor" rule still alarms whenever that variation
plus the sampling noise of the effect (a PSI over K bins of two samples is biased upwards by about
(K-1)(1/n + 1/m)) crosses the floor. A minimum-effect test takes both sample sizes into account instead:
``p_beyond`` is the p-value of "the true effect is at most the floor" (noncentral chi-square for a table,
Fisher's noncentral hypergeometric distribution for a rate), so at any window size a difference the size of
the floor alarms in at most alpha of windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
from scipy import stats as sst
from scipy.special import gammaln

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Alternative = Literal["two-sided", "greater", "less"]

MIN_EXPECTED: Final = 5.0
"""Below this expected count in any cell, the chi-square approximation is replaced by a Monte-Carlo exact test."""

EXACT_DRAWS: Final = 9_999
"""Monte-Carlo draws of an exact contingency test: p-values resolve to 1e-4, below the smallest Holm level
(family alpha 0.01 over about forty tests is 2.5e-4)."""

SEQUENTIAL_HITS: Final = 10
"""The exact test stops drawing once this many simulated statistics reach the observed one."""
SEQUENTIAL_BATCH: Final = 500
FIRST_BATCH: Final = 50
"""The first batch of draws is small (then x4 up to `SEQUENTIAL_BATCH`): most windows are healthy, and a large
p-value is settled by a few dozen draws."""

PSI_FLOOR: Final = 1e-4
"""Proportions are floored here in the PSI so that an empty bin gives a large but finite term."""


@dataclass(frozen=True)
class TestOutcome:
    """One test's result: its statistic, p-values, the effect size it is judged on, and how it was computed.

    Attributes:
        p_value: p-value of "no difference".
        p_beyond: p-value of "the difference is at most the floor" (equal to `p_value` without a floor).
        effect: PSI (tables) or rate ratio window/reference (rates), as observed.
        df: degrees of freedom of a table (bins with a count, minus one); 1 for a rate.
    """

    method: str
    statistic: float
    p_value: float
    effect: float
    reference_rows: float
    rows: int
    p_beyond: float = 1.0
    df: int = 1

    @property
    def p_judged(self) -> float:
        """The p-value a verdict uses: a difference must be both real and beyond the floor (intersection-union:
        rejecting only when both tests reject keeps the level of each)."""
        return max(self.p_value, self.p_beyond)


def kish_size(weights: npt.ArrayLike) -> float:
    """Effective sample size of weighted rows, ``(Σw)² / Σw²``: the unweighted size with the same variance."""
    w = np.asarray(weights, dtype=np.float64)
    total = float(w.sum())
    squares = float(np.square(w).sum())
    return total * total / squares if squares > 0 else 0.0


def quantile_edges(reference: npt.ArrayLike, bins: int = 20, tail: tuple[float, ...] = (0.99, 0.999)) -> FloatArray:
    """Inner bin edges at the reference's quantiles, plus extra edges in the upper tail.

    Equal-width bins put almost every amount of a heavy-tailed column in the first bin (why Evidently's PSI
    sees nothing when amounts double); quantile bins hold equal reference mass, and the tail edges give the
    top 1 % and 0.1 % bins of their own, where fraud lives. Repeated quantiles (point masses such as zero
    balances) collapse into one edge, so a point mass is one bin.
    """
    values = np.asarray(reference, dtype=np.float64)
    if values.size == 0:
        raise ValueError("cannot bin against an empty reference")
    levels = np.unique(np.concatenate([np.linspace(0.0, 1.0, bins + 1)[1:-1], np.asarray(tail, dtype=np.float64)]))
    return np.unique(np.quantile(values, levels, method="inverted_cdf"))


def bin_counts(values: npt.ArrayLike, edges: FloatArray, weights: npt.ArrayLike | None = None) -> FloatArray:
    """Counts (or weight sums) per bin; bin ``i`` holds ``edges[i-1] < v <= edges[i]``, the last bin the rest."""
    index = np.searchsorted(edges, np.asarray(values, dtype=np.float64), side="left")
    w = None if weights is None else np.asarray(weights, dtype=np.float64)
    return np.bincount(index, weights=w, minlength=edges.size + 1).astype(np.float64)


def category_counts(codes: npt.ArrayLike, categories: int, weights: npt.ArrayLike | None = None) -> FloatArray:
    """Counts (or weight sums) per integer category code ``0..categories-1``."""
    w = None if weights is None else np.asarray(weights, dtype=np.float64)
    return np.bincount(np.asarray(codes, dtype=np.int64), weights=w, minlength=categories).astype(np.float64)


def psi(reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
    """Population stability index of two count vectors over the same bins (the effect size users know).

    Half a count is added to every bin of both (the usual smoothing of a log ratio), so that an empty bin of a
    small sample gives a finite term near what the counts support rather than a term set by an arbitrary floor.
    """
    r = np.asarray(reference, dtype=np.float64)
    c = np.asarray(current, dtype=np.float64)
    if r.sum() <= 0 or c.sum() <= 0:
        return 0.0
    p = np.maximum((r + 0.5) / (r.sum() + 0.5 * r.size), PSI_FLOOR)
    q = np.maximum((c + 0.5) / (c.sum() + 0.5 * c.size), PSI_FLOOR)
    return float(np.sum((q - p) * np.log(q / p)))


def beyond_floor_p(statistic: float, df: int, rows: float, reference_rows: float, floor: float) -> float:
    """p-value of "the true divergence is at most `floor`" for Pearson's X² of a 2×K table.

    X² = N·D with N = n·m/(n+m) and D = Σ (q-p)²/π the chi-square divergence of the two distributions (π pooled),
    which equals the PSI to second order; at a true divergence D0, X² is approximately noncentral chi-square with
    K-1 degrees of freedom and noncentrality N·D0. The p-value is its upper tail at D0 = `floor`.
    """
    if df < 1 or rows <= 0 or reference_rows <= 0:
        return 1.0
    size = rows * reference_rows / (rows + reference_rows)
    return float(sst.ncx2.sf(statistic, df, size * floor))


def _as_reference_counts(weighted: FloatArray, effective_rows: float) -> IntArray:
    """Weighted reference counts rescaled to the effective sample size and rounded (for the exact tests)."""
    total = weighted.sum()
    if total <= 0:
        return np.zeros(weighted.size, dtype=np.int64)
    counts: IntArray = np.rint(weighted / total * effective_rows).astype(np.int64)
    return counts


def _pearson(table: FloatArray) -> FloatArray:
    """Pearson's X² of 2×K tables given as rows ``(..., 2, K)``; columns with no count contribute nothing."""
    rows = table.sum(axis=-1, keepdims=True)
    cols = table.sum(axis=-2, keepdims=True)
    total = table.sum(axis=(-2, -1), keepdims=True)
    expected = rows * cols / total
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(expected > 0, np.square(table - expected) / expected, 0.0)
    return np.asarray(terms.sum(axis=(-2, -1)), dtype=np.float64)


def contingency_test(
    reference: npt.ArrayLike,
    current: npt.ArrayLike,
    *,
    reference_rows: float | None = None,
    floor: float = 0.0,
    rng: np.random.Generator | None = None,
    draws: int = EXACT_DRAWS,
) -> TestOutcome:
    """Do the current counts come from the same distribution as the reference counts? (2×K homogeneity test)

    Pearson's chi-square on the 2×K contingency table when every expected count is at least `MIN_EXPECTED`;
    otherwise a Monte-Carlo exact test: tables drawn from the multivariate hypergeometric distribution of the
    current row given both margins (what Fisher's exact test enumerates), p = (1 + #{X² ≥ observed}) / (1 + draws).
    With a `floor`, ``p_beyond`` tests "divergence at most the floor" (`beyond_floor_p`).

    Args:
        reference: reference counts (or weight sums) per bin.
        current: current counts per bin (integers).
        reference_rows: effective size of a weighted reference (`kish_size`); None = the counts are plain counts.
        floor: the smallest divergence (PSI) that counts as drift; 0 = any difference.
        rng: random source of the exact test (seeded by the caller so a verdict is reproducible).
        draws: Monte-Carlo draws of the exact test.
    """
    r_weighted = np.asarray(reference, dtype=np.float64)
    c = np.rint(np.asarray(current, dtype=np.float64)).astype(np.int64)
    size = float(r_weighted.sum()) if reference_rows is None else float(reference_rows)
    r = _as_reference_counts(r_weighted, size)
    effect = psi(r_weighted, c)
    keep = (r + c) > 0
    r, c = r[keep], c[keep]
    n_cur = int(c.sum())
    if keep.sum() < 2 or n_cur == 0 or r.sum() == 0:
        return TestOutcome("chi2", 0.0, 1.0, effect, size, n_cur, 1.0, 0)
    table = np.stack([r, c]).astype(np.float64)
    observed = float(_pearson(table))
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    df = int(keep.sum()) - 1
    if float(expected.min()) >= MIN_EXPECTED:
        p_value = float(sst.chi2.sf(observed, df))
        method = "chi2"
    else:
        generator = rng if rng is not None else np.random.default_rng(0)
        p_value = _monte_carlo_p(r + c, n_cur, observed, generator, draws)
        method = "chi2-exact-mc"
    p_beyond = beyond_floor_p(observed, df, n_cur, float(r.sum()), floor) if floor > 0 else p_value
    return TestOutcome(method, observed, p_value, effect, size, n_cur, p_beyond, df)


def _monte_carlo_p(totals: IntArray, n_cur: int, observed: float, rng: np.random.Generator, draws: int) -> float:
    """Exact-test p-value by simulation, stopped early once it is clearly large (Besag & Clifford, 1991).

    Drawing stops as soon as `SEQUENTIAL_HITS` simulated statistics reach the observed one (p = hits / draws so
    far, a valid p-value); only small p-values, the ones that decide a verdict, pay for all `draws`.
    """
    done = 0
    exceed = 0
    tolerance = 1e-9 * max(1.0, observed)
    size = FIRST_BATCH
    while done < draws:
        batch = min(size, draws - done)
        size = min(4 * size, SEQUENTIAL_BATCH)
        simulated_current = rng.multivariate_hypergeometric(totals, n_cur, size=batch).astype(np.float64)
        simulated = np.stack([totals[np.newaxis, :] - simulated_current, simulated_current], axis=1)
        statistics = _pearson(simulated)
        hits = np.flatnonzero(statistics >= observed - tolerance)
        if exceed + hits.size >= SEQUENTIAL_HITS:
            stop_at = done + int(hits[SEQUENTIAL_HITS - exceed - 1]) + 1
            return SEQUENTIAL_HITS / stop_at
        exceed += int(hits.size)
        done += batch
    return (1 + exceed) / (1 + draws)


def rate_test(
    reference_hits: float,
    reference_rows: float,
    hits: int,
    rows: int,
    *,
    alternative: Alternative = "two-sided",
    floor: float = 1.0,
) -> TestOutcome:
    """Is the current rate of an event (block, review, a score above a reference quantile) different?

    Fisher's exact test on the 2×2 table: exact at any rate, including a block rate of 0.04 % on 200 rows
    (where a z-test false-alarms several times too often). The effect is the rate ratio current/reference,
    with half a count added to both hit counts so that zero hits give a finite ratio.

    With a `floor` above 1, ``p_beyond`` is the exact p-value of "the odds ratio is at most the floor" (and, two-
    sided, "at least its inverse"; the smaller tail doubled): Fisher's noncentral hypergeometric distribution of
    the window's hits given both margins. At these rates (below a few per cent) odds and rate ratios coincide.

    Args:
        reference_hits: events in the reference (a weighted count is fine; it is rounded on `reference_rows`).
        reference_rows: reference size (effective size for a weighted reference).
        hits: events in the window.
        rows: window size.
        alternative: "greater" asks only whether the current rate is higher.
        floor: the smallest rate ratio that counts as drift; 1 = any difference.
    """
    n_ref = max(round(reference_rows), 0)
    k_ref = min(max(round(reference_hits), 0), n_ref)
    ratio = ((hits + 0.5) / max(rows, 1)) / ((k_ref + 0.5) / max(n_ref, 1))
    if n_ref == 0 or rows == 0:
        return TestOutcome("fisher", ratio, 1.0, ratio, float(n_ref), rows)
    # The window's hits given both margins: hypergeometric (odds ratio 1) or Fisher's noncentral (odds = floor).
    total, events = rows + n_ref, hits + k_ref
    support, central = _conditional_hits(total, events, rows, 1.0)
    at = hits - int(support[0])
    if alternative == "greater":
        p_value = float(central[at:].sum())
    elif alternative == "less":
        p_value = float(central[: at + 1].sum())
    else:  # Fisher's two-sided p-value: every table at most as likely as the observed one
        p_value = float(central[central <= central[at] * (1 + 1e-7)].sum())
    p_beyond = p_value
    if floor > 1.0:
        upper = float(_conditional_hits(total, events, rows, floor)[1][at:].sum())
        lower = float(_conditional_hits(total, events, rows, 1.0 / floor)[1][: at + 1].sum())
        p_beyond = {"greater": upper, "less": lower}.get(alternative, 2.0 * min(upper, lower))
    odds = (hits * (n_ref - k_ref)) / (k_ref * (rows - hits)) if k_ref and rows > hits else float("inf")
    return TestOutcome("fisher", odds, min(p_value, 1.0), ratio, float(n_ref), rows, min(p_beyond, 1.0), 1)


def _conditional_hits(total: int, events: int, rows: int, odds: float) -> tuple[IntArray, FloatArray]:
    """Support and probabilities of a window's hits given both margins of the 2×2 table, at an odds ratio.

    Fisher's noncentral hypergeometric distribution (the central one at odds 1): P(x) ∝ C(rows, x)
    C(total - rows, events - x) odds^x, computed in log space over the whole support at once (a few thousand
    values at most; scipy's distribution objects take ~20 ms per call, this a fraction of a millisecond).
    """
    low, high = max(0, rows - (total - events)), min(rows, events)
    x = np.arange(low, high + 1, dtype=np.int64)
    log_p = _log_choose(rows, x) + _log_choose(total - rows, events - x) + x.astype(np.float64) * float(np.log(odds))
    p = np.exp(log_p - log_p.max())
    probabilities: FloatArray = p / p.sum()
    return x, probabilities


def _log_choose(n: int, k: IntArray) -> FloatArray:
    kf = k.astype(np.float64)
    result: FloatArray = gammaln(n + 1.0) - gammaln(kf + 1.0) - gammaln(n - kf + 1.0)
    return result


def holm(p_values: npt.ArrayLike) -> FloatArray:
    """Holm's step-down adjusted p-values: reject every test whose adjusted p-value is at most the family alpha.

    Controls the family-wise error rate (any false alarm in a window) under any dependence between the tests,
    which matters here: amount, balances and score are strongly dependent.
    """
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, p[order] * (m - np.arange(m)))
    adjusted = np.empty(m, dtype=np.float64)
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted
