"""Two-sample tests for drift on fraud traffic: valid at 200 rows and at a million, against a finite reference.

Every test here compares a window with a *sample* (the reference), so each accounts for the reference's own
noise: contingency tables rather than goodness of fit against reference proportions (the bug behind Evidently's
chi-square alarms against a small reference), and exact or Monte-Carlo-exact p-values where expected counts are
small (a 200-row window holds about one DEBIT and a block rate of 0.04 % holds none). The functions are plain
numpy/scipy on counts, so a million-row window costs one ``searchsorted`` and one ``bincount`` per column.

Reference rows may carry weights (post-stratification by hour of day, see `monitoring.drift`). A weighted
reference enters the tests as counts on its effective sample size (Kish), the size of an unweighted sample
with the same variance: weighting never makes the reference look more precise than it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
from scipy import stats as sst

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

PSI_FLOOR: Final = 1e-4
"""Proportions are floored here in the PSI so that an empty bin gives a large but finite term."""


@dataclass(frozen=True)
class TestOutcome:
    """One test's result: its statistic, p-value, the effect size it is judged on, and how it was computed."""

    method: str
    statistic: float
    p_value: float
    effect: float
    reference_rows: float
    rows: int


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
    """Population stability index of two count vectors over the same bins (the effect size users know)."""
    r = np.asarray(reference, dtype=np.float64)
    c = np.asarray(current, dtype=np.float64)
    if r.sum() <= 0 or c.sum() <= 0:
        return 0.0
    p = np.maximum(r / r.sum(), PSI_FLOOR)
    q = np.maximum(c / c.sum(), PSI_FLOOR)
    return float(np.sum((q - p) * np.log(q / p)))


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
    rng: np.random.Generator | None = None,
    draws: int = EXACT_DRAWS,
) -> TestOutcome:
    """Do the current counts come from the same distribution as the reference counts? (2×K homogeneity test)

    Pearson's chi-square on the 2×K contingency table when every expected count is at least `MIN_EXPECTED`;
    otherwise a Monte-Carlo exact test: tables drawn from the multivariate hypergeometric distribution of the
    current row given both margins (what Fisher's exact test enumerates), p = (1 + #{X² ≥ observed}) / (1 + draws).

    Args:
        reference: reference counts (or weight sums) per bin.
        current: current counts per bin (integers).
        reference_rows: effective size of a weighted reference (`kish_size`); None = the counts are plain counts.
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
        return TestOutcome("chi2", 0.0, 1.0, effect, size, n_cur)
    table = np.stack([r, c]).astype(np.float64)
    observed = float(_pearson(table))
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    df = int(keep.sum()) - 1
    if float(expected.min()) >= MIN_EXPECTED:
        return TestOutcome("chi2", observed, float(sst.chi2.sf(observed, df)), effect, size, n_cur)
    generator = rng if rng is not None else np.random.default_rng(0)
    p_value = _monte_carlo_p(r + c, n_cur, observed, generator, draws)
    return TestOutcome("chi2-exact-mc", observed, p_value, effect, size, n_cur)


def _monte_carlo_p(totals: IntArray, n_cur: int, observed: float, rng: np.random.Generator, draws: int) -> float:
    """Exact-test p-value by simulation, stopped early once it is clearly large (Besag & Clifford, 1991).

    Drawing stops as soon as `SEQUENTIAL_HITS` simulated statistics reach the observed one (p = hits / draws so
    far, a valid p-value); only small p-values, the ones that decide a verdict, pay for all `draws`.
    """
    done = 0
    exceed = 0
    tolerance = 1e-9 * max(1.0, observed)
    while done < draws:
        batch = min(SEQUENTIAL_BATCH, draws - done)
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
) -> TestOutcome:
    """Is the current rate of an event (block, review, a score above a reference quantile) different?

    Fisher's exact test on the 2×2 table: exact at any rate, including a block rate of 0.04 % on 200 rows
    (where a z-test false-alarms several times too often). The effect is the rate ratio current/reference,
    with half a count added to both hit counts so that zero hits give a finite ratio.

    Args:
        reference_hits: events in the reference (a weighted count is fine; it is rounded on `reference_rows`).
        reference_rows: reference size (effective size for a weighted reference).
        hits: events in the window.
        rows: window size.
        alternative: "greater" asks only whether the current rate is higher.
    """
    n_ref = max(round(reference_rows), 0)
    k_ref = min(max(round(reference_hits), 0), n_ref)
    ratio = ((hits + 0.5) / max(rows, 1)) / ((k_ref + 0.5) / max(n_ref, 1))
    if n_ref == 0 or rows == 0:
        return TestOutcome("fisher", ratio, 1.0, ratio, float(n_ref), rows)
    # rows: current, reference; columns: event, no event. "greater" = odds of the event higher in the window.
    table = np.array([[hits, rows - hits], [k_ref, n_ref - k_ref]], dtype=np.int64)
    result = sst.fisher_exact(table, alternative=alternative)
    return TestOutcome("fisher", float(result.statistic), float(result.pvalue), ratio, float(n_ref), rows)


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
