"""The two-sample tests: right p-values under no difference (including the exact small-sample path), power
under a difference, Holm's adjustment against its definition."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sst

from monitoring import stats


def test_holm_matches_its_definition() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.005])
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> running max 0.02, 0.03, 0.06, 0.06
    np.testing.assert_allclose(stats.holm(p), [0.03, 0.06, 0.06, 0.02])
    assert stats.holm(np.array([])).size == 0


def test_quantile_edges_hold_equal_mass_and_a_tail_bin_of_their_own() -> None:
    rng = np.random.default_rng(0)
    amounts = rng.lognormal(10, 2, 100_000)
    edges = stats.quantile_edges(amounts, bins=10)
    counts = stats.bin_counts(amounts, edges)
    assert counts.size == 12  # 9 deciles + p99 + p99.9 edges -> 12 bins
    assert counts[-1] == pytest.approx(100, abs=2)  # above p99.9
    assert counts[-2] == pytest.approx(900, abs=5)  # p99 .. p99.9
    # equal-width bins would put almost everything in the first bin; quantile bins keep the deciles even
    assert counts[:9].min() > 9_000
    # a point mass (zero balances) collapses into one edge instead of empty bins
    balances = np.where(rng.random(10_000) < 0.4, 0.0, rng.lognormal(8, 1, 10_000))
    edges = stats.quantile_edges(balances, bins=10)
    assert np.count_nonzero(edges == 0.0) == 1


def test_contingency_test_false_alarm_rate_is_at_most_alpha_with_small_windows() -> None:
    """200-row windows against a 20k reference of 24 categories, several nearly empty: the exact path."""
    rng = np.random.default_rng(1)
    shares = np.r_[np.full(20, 0.049), np.full(4, 0.005)]
    shares /= shares.sum()
    rejections = 0
    trials = 300
    exact = 0
    for _ in range(trials):
        reference = rng.multinomial(20_000, shares)
        current = rng.multinomial(200, shares)
        outcome = stats.contingency_test(reference, current, rng=rng)
        exact += outcome.method == "chi2-exact-mc"
        rejections += outcome.p_value <= 0.05
    assert exact == trials
    assert rejections / trials <= 0.08  # nominal 0.05; 300 trials: 0.08 is > 2 standard errors above it


def test_contingency_test_sees_a_shift_of_a_few_percent_at_10k_rows() -> None:
    rng = np.random.default_rng(2)
    values = rng.lognormal(10, 1, 20_000)
    edges = stats.quantile_edges(values)
    shifted = rng.lognormal(10, 1, 10_000) * 1.2
    outcome = stats.contingency_test(stats.bin_counts(values, edges), stats.bin_counts(shifted, edges))
    assert outcome.method == "chi2"
    assert outcome.p_value < 1e-6
    assert outcome.effect > 0.02  # PSI on quantile bins


def test_contingency_accounts_for_the_reference_noise() -> None:
    """Goodness of fit against a small reference's proportions (Evidently's chi-square) rejects almost always
    at 100k rows; the two-sample table does not."""
    rng = np.random.default_rng(3)
    shares = np.array([0.35, 0.22, 0.01, 0.34, 0.08])
    gof = two_sample = 0
    for _ in range(100):
        reference = rng.multinomial(1_000, shares)
        current = rng.multinomial(100_000, shares)
        expected = reference / reference.sum() * current.sum()
        gof += sst.chisquare(current, np.maximum(expected, 1e-9)).pvalue <= 0.05
        two_sample += stats.contingency_test(reference, current).p_value <= 0.05
    assert gof >= 80
    assert two_sample <= 12


def test_rate_test_is_exact_at_rates_of_four_in_ten_thousand() -> None:
    rng = np.random.default_rng(4)
    rate = 0.0004
    false_alarms = 0
    for _ in range(400):
        outcome = stats.rate_test(rng.binomial(100_000, rate), 100_000, int(rng.binomial(200, rate)), 200)
        false_alarms += outcome.p_value <= 0.01
    assert false_alarms <= 4  # Fisher's test is conservative here; a z-test fires in several % of windows
    blocked = stats.rate_test(40, 100_000, 160, 100_000, alternative="greater")
    assert blocked.p_value < 1e-10
    assert blocked.effect == pytest.approx(160.5 / 40.5)
    assert stats.rate_test(0, 20_000, 0, 200).p_value == 1.0


def test_weighted_reference_counts_at_its_effective_size() -> None:
    weights = np.r_[np.full(100, 10.0), np.full(900, 0.1)]
    assert stats.kish_size(weights) == pytest.approx(weights.sum() ** 2 / np.square(weights).sum())
    assert stats.kish_size(np.ones(50)) == pytest.approx(50)
    # identical proportions but a small effective reference: no evidence of a difference
    outcome = stats.contingency_test(np.array([500.0, 500.0]), np.array([540, 460]), reference_rows=20)
    assert outcome.p_value > 0.5


def _shifted(shares: np.ndarray, divergence: float) -> np.ndarray:
    """Shares moved along a fixed direction until their chi-square divergence from `shares` is `divergence`."""
    direction = np.linspace(-1.0, 1.0, shares.size) * shares
    direction -= shares * direction.sum() / shares.sum()
    scale = np.sqrt(divergence / np.sum(np.square(direction) / shares))
    moved: np.ndarray = shares + scale * direction
    return moved


def test_a_difference_at_the_floor_alarms_at_most_alpha_at_any_size() -> None:
    """The minimum-effect test: a true divergence equal to the floor rejects "at most the floor" in about alpha of
    windows, at 1k rows as at 100k (where the plain test rejects every time)."""
    rng = np.random.default_rng(5)
    shares = np.full(20, 0.05)
    floor = 0.02
    at_floor = _shifted(shares, floor)
    for rows in (1_000, 100_000):
        beyond = plain = 0
        for _ in range(300):
            reference = rng.multinomial(20_000, shares)
            current = rng.multinomial(rows, at_floor)
            outcome = stats.contingency_test(reference, current, floor=floor)
            beyond += outcome.p_beyond <= 0.01
            plain += outcome.p_value <= 0.01
        assert beyond / 300 <= 0.03, (rows, beyond)  # nominal 0.01
        if rows == 100_000:
            assert plain == 300  # significant every time: why "significant" alone cannot be the verdict
    # three times the floor, 100k rows: found every time
    far = _shifted(shares, 3 * floor)
    found = sum(
        stats.contingency_test(rng.multinomial(20_000, shares), rng.multinomial(100_000, far), floor=floor).p_judged
        <= 0.01
        for _ in range(50)
    )
    assert found == 50


def test_the_rate_floor_is_an_exact_minimum_effect_test() -> None:
    rng = np.random.default_rng(6)
    rate = 0.005
    alarms = 0
    for _ in range(300):  # the window's rate is exactly twice the reference's: at the floor
        outcome = stats.rate_test(
            rng.binomial(40_000, rate), 40_000, int(rng.binomial(20_000, 2 * rate)), 20_000, floor=2.0
        )
        assert outcome.p_value <= outcome.p_judged
        alarms += outcome.p_judged <= 0.01
    assert alarms <= 8  # nominal 0.01 of 300 = 3; Fisher's conditional test is conservative
    tripled = stats.rate_test(360, 180_000, 600, 100_000, alternative="greater", floor=2.0)
    assert tripled.p_beyond < 1e-6
    halved = stats.rate_test(360, 180_000, 100, 100_000, floor=2.0)  # two-sided: a rate that fell counts too
    assert halved.p_beyond > 0.01 and halved.p_value < 1e-6  # 0.56x: real but within the floor
    quartered = stats.rate_test(360, 180_000, 25, 100_000, floor=2.0)
    assert quartered.p_beyond < 1e-4


def test_psi_of_small_samples_is_finite_and_modest() -> None:
    """Half-count smoothing: 60 reference frauds against 100 window frauds on ten bins, several empty."""
    reference = np.array([10, 8, 0, 12, 5, 0, 9, 7, 6, 3], dtype=np.float64)
    current = np.array([15, 14, 2, 20, 9, 1, 16, 10, 8, 5], dtype=np.float64)
    assert 0 < stats.psi(reference, current) < 0.1
