"""The sequential tests' building blocks: exact likelihoods, martingale property, error control, intervals."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from serving.canary.stats import (
    GRID,
    OddsRatioEvidence,
    ProportionBounds,
    binomial_loglik,
    grid_index,
    hypergeometric_loglik,
    paired_tail_discordance,
    split_counts,
)


def _evidence(*windows: tuple[int, int, int, int]) -> OddsRatioEvidence:
    """Evidence from (challenger events, challenger exposure, champion events, champion exposure) windows."""
    evidence = OddsRatioEvidence()
    for x_h, n_h, x_c, n_c in windows:
        evidence.add(
            hypergeometric_loglik(x_h, n_h, n_c, x_h + x_c),
            challenger_events=x_h,
            champion_events=x_c,
            challenger=n_h,
            champion=n_c,
        )
    return evidence


def test_hypergeometric_loglik_is_fishers_noncentral_hypergeometric() -> None:
    n_h, n_c, m = 40, 60, 12
    one = grid_index(1.0)
    for x in (0, 3, 7, 12):
        loglik = hypergeometric_loglik(x, n_h, n_c, m)
        for theta_index in (grid_index(0.25), grid_index(2.0), grid_index(8.0)):
            expected = scipy_stats.nchypergeom_fisher.logpmf(
                x, n_h + n_c, n_h, m, GRID[theta_index]
            ) - scipy_stats.hypergeom.logpmf(x, n_h + n_c, n_h, m)
            assert loglik[theta_index] - loglik[one] == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("ratio", [1.5, 4.0, 32.0])
def test_likelihood_ratio_has_mean_one_under_the_null(ratio: float) -> None:
    """The martingale property: E[LR] = 1 when there is no difference, for any exposures and event count."""
    n_h, n_c, m = 50, 950, 9
    a, one = grid_index(ratio), grid_index(1.0)
    support = np.arange(0, m + 1)
    pmf = scipy_stats.hypergeom.pmf(support, n_h + n_c, n_h, m)
    ratios = [
        math.exp(hypergeometric_loglik(int(x), n_h, n_c, m)[a] - hypergeometric_loglik(int(x), n_h, n_c, m)[one])
        for x in support
    ]
    assert float(np.dot(pmf, ratios)) == pytest.approx(1.0, abs=1e-9)
    binomial = [math.exp(binomial_loglik(int(x), m, 0.3)[a] - binomial_loglik(int(x), m, 0.3)[one]) for x in support]
    assert float(np.dot(scipy_stats.binom.pmf(support, m, 0.3), binomial)) == pytest.approx(1.0, abs=1e-9)


def test_binomial_loglik_matches_scipy() -> None:
    loglik = binomial_loglik(7, 20, 0.25)
    a, one = grid_index(2.0), grid_index(1.0)
    p_a = 2 * 0.25 / (2 * 0.25 + 0.75)
    expected = scipy_stats.binom.logpmf(7, 20, p_a) - scipy_stats.binom.logpmf(7, 20, 0.25)
    assert loglik[a] - loglik[one] == pytest.approx(expected, abs=1e-9)


def test_repeated_looks_keep_the_error_rate_while_a_naive_test_inflates_it() -> None:
    """200 null streams of 30 looks: the always-valid test stays below alpha, Fisher's exact test at every look
    does not. (The benchmark measures this at scale; here it guards against a broken martingale.)"""
    rng = np.random.default_rng(7)
    alpha, runs, looks, n = 0.05, 200, 30, 100
    sequential = naive = 0
    for _ in range(runs):
        x_h, x_c = rng.binomial(n, 0.05, looks), rng.binomial(n, 0.05, looks)
        evidence = OddsRatioEvidence()
        log_m = []
        for h, c in zip(x_h, x_c, strict=True):
            evidence.add(
                hypergeometric_loglik(int(h), n, n, int(h + c)),
                challenger_events=h,
                champion_events=c,
                challenger=n,
                champion=n,
            )
            log_m.append(evidence.log_mixture(1.0))
        sequential += max(log_m) >= math.log(1 / alpha)
        # Fisher's exact test, one-sided, on the pooled table at every look: P(X >= x) of the hypergeometric
        cum_h, cum_events, exposure = np.cumsum(x_h), np.cumsum(x_h + x_c), n * np.arange(1, looks + 1)
        p_naive = scipy_stats.hypergeom.sf(cum_h - 1, 2 * exposure, exposure, cum_events)
        naive += bool((p_naive <= alpha).any())
    assert sequential / runs <= alpha
    assert naive / runs > 2 * alpha


def test_harm_is_detected_and_improvement_is_not() -> None:
    harm = _evidence(*[(20, 1000, 5, 1000)] * 3)
    assert harm.log_mixture(2**0.25) > math.log(1 / 0.007)
    improvement = _evidence(*[(1, 1000, 30, 1000)] * 3)
    assert improvement.log_mixture(2**0.25) < 0


def test_confidence_sequence_covers_the_estimate_and_narrows() -> None:
    few = _evidence((8, 1000, 4, 1000))
    many = _evidence(*[(8, 1000, 4, 1000)] * 20)
    low_few, high_few = few.confidence_sequence(0.05)
    low_many, high_many = many.confidence_sequence(0.05)
    assert low_many <= 2.0 <= high_many
    assert low_few <= low_many and high_many <= high_few
    assert high_many < 4.0
    assert _evidence().confidence_sequence(0.05) == (0.0, math.inf)


def test_evidence_round_trips_through_a_dict() -> None:
    evidence = _evidence((3, 500, 1, 9000), (0, 480, 2, 9100))
    again = OddsRatioEvidence.from_dict(evidence.to_dict())
    assert again.to_dict() == evidence.to_dict()
    assert again.log_mixture(1.19) == pytest.approx(evidence.log_mixture(1.19), abs=1e-6)
    with pytest.raises(ValueError, match="loglik"):
        OddsRatioEvidence.from_dict({**evidence.to_dict(), "loglik": [0.0]})


def test_split_counts_use_a_pooled_threshold() -> None:
    challenger, champion = np.arange(100.0), np.arange(100.0) + 50
    above_h, above_c, threshold = split_counts(challenger, champion, 0.9)
    assert threshold == pytest.approx(np.quantile(np.concatenate([challenger, champion]), 0.9))
    assert above_h == 0 and above_c == 20


def test_paired_tail_discordance_ignores_pairs_that_agree() -> None:
    champion = np.linspace(0, 1, 1000)
    assert paired_tail_discordance(champion, champion.copy(), 0.99) == (0, 0)
    only_c, only_h = paired_tail_discordance(champion, np.minimum(champion + 0.05, 1.0), 0.9)
    assert only_h > 0 and only_c == 0


def test_proportion_bounds_cover_and_shrink() -> None:
    small, large = ProportionBounds(), ProportionBounds()
    small.add(6, 20)
    large.add(300, 1000)
    low_s, high_s = small.interval(0.05)
    low_l, high_l = large.interval(0.05)
    assert low_s < 0.3 < high_s and low_l < 0.3 < high_l
    assert high_l - low_l < high_s - low_s
    assert ProportionBounds().interval(0.05) == (0.0, 1.0)
    with pytest.raises(ValueError, match="successes"):
        small.add(3, 2)
    assert ProportionBounds.from_dict(large.to_dict()) == large


def test_detectable_ratio_shrinks_with_exposure_and_needs_champion_events() -> None:
    few = _evidence((1, 1000, 20, 19000))
    many = _evidence(*[(1, 1000, 20, 19000)] * 10)
    ratio_few = few.detectable_ratio(0.007, 1.19, paired=False)
    ratio_many = many.detectable_ratio(0.007, 1.19, paired=False)
    assert ratio_many is not None and ratio_few is not None and ratio_many < ratio_few
    assert _evidence((0, 1000, 0, 19000)).detectable_ratio(0.007, 1.19, paired=False) is None
    paired = OddsRatioEvidence()
    paired.add(
        binomial_loglik(0, 0, 0.5),
        challenger_events=0,
        champion_events=0,
        challenger=9000,
        champion=9000,
        champion_baseline=4,
    )
    detectable = paired.detectable_ratio(0.007, 1.19, paired=True)
    assert detectable is not None and 2.0 < detectable < 8.0
