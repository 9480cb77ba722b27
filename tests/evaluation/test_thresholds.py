"""Threshold choice on hand-made score sets, against a brute-force search, and the decision bands."""

from __future__ import annotations

import json

import numpy as np
import numpy.typing as npt
import pytest

from fraud.errors import EvaluationError, PipelineError
from fraud.evaluation.metrics import NEVER, expected_cost
from fraud.evaluation.thresholds import (
    DEFAULT_ALERT_BUDGET,
    DEFAULT_REVIEW_COST,
    DEFAULT_REVIEW_SHARE,
    Thresholds,
    choose_thresholds,
)

# Ten transactions. Frauds at 0.95 (1000), 0.8 (300), 0.5 (40), 0.2 (5): total fraud amount 1345.
SCORES = np.array([0.95, 0.90, 0.80, 0.70, 0.60, 0.50, 0.40, 0.30, 0.20, 0.10])
LABELS = np.array([1, 0, 1, 0, 0, 1, 0, 0, 1, 0])
AMOUNTS = np.array([1000.0, 50, 300, 20, 10, 40, 30, 60, 5, 70])


def random_block(
    n: int, seed: int, fraud_rate: float = 0.02, decimals: int | None = 3
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int8], npt.NDArray[np.float64]]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < fraud_rate).astype(np.int8)
    scores = np.clip(rng.normal(0.3 + 0.3 * y, 0.15), 0.0, 1.0)
    if decimals is not None:
        scores = scores.round(decimals)
    return scores, y, rng.lognormal(11.0, 1.5, n).round(2)


# --- the block threshold ----------------------------------------------------------------------------------

# With review cost 10, the cost of flagging score >= t is:
#   never 1345 | .95 345 | .9 355 | .8 55 | .7 65 | .6 75 | .5 35 | .4 45 | .3 55 | .2 50 | .1 60
# With review cost 100:  never 1345 | .95 345 | .9 445 | .8 145 | .7 245 | .6 345 | .5 305 | ...


@pytest.mark.parametrize(
    ("budget", "review_cost", "block", "cost", "alert_rate"),
    [
        (0.5, 100.0, 0.8, 145.0, 0.3),
        (0.5, 10.0, 0.8, 55.0, 0.3),  # 0.5 would cost 35 but flags 6 of 10
        (0.6, 10.0, 0.5, 35.0, 0.6),  # now it fits
        (1.0, 10.0, 0.5, 35.0, 0.6),  # lowest cost overall; flagging more costs more
        (0.1, 10.0, 0.95, 345.0, 0.1),  # one alert
        (0.19, 10.0, 0.95, 345.0, 0.1),  # 1.9 alerts -> 1
        (0.0, 10.0, NEVER, 1345.0, 0.0),  # no alerts at all: nothing blocked, every fraud missed
    ],
)
def test_block_threshold_by_hand(
    budget: float, review_cost: float, block: float, cost: float, alert_rate: float
) -> None:
    chosen = choose_thresholds(SCORES, LABELS, AMOUNTS, alert_budget=budget, review_cost=review_cost, review_share=0)
    assert chosen.block == block
    assert chosen.expected_cost_on_validation == pytest.approx(cost)
    assert chosen.alert_rate_on_validation == pytest.approx(alert_rate)
    assert chosen.baseline_cost_on_validation == 1345.0
    assert chosen.review == chosen.block  # review_share 0: empty band
    assert (chosen.alert_budget, chosen.review_cost, chosen.review_share) == (budget, review_cost, 0.0)


def test_equal_costs_go_to_the_higher_threshold() -> None:
    # flag >= 0.9: misses 10 -> cost 10; >= 0.8: 10 + one false alert = 20; >= 0.7: 0 missed + one false alert = 10
    chosen = choose_thresholds([0.9, 0.8, 0.7], [1, 0, 1], [100.0, 1.0, 10.0], alert_budget=1.0, review_cost=10.0)
    assert chosen.block == 0.9
    assert chosen.expected_cost_on_validation == 10.0
    assert chosen.recall_on_validation == 0.5


def test_tie_groups_are_not_split_by_the_budget() -> None:
    # Two frauds share 0.9 with a legit row; the budget allows 2 alerts, so the 0.9 group (3 rows) cannot be taken.
    scores = [0.9, 0.9, 0.9, *[0.1] * 7]
    y = [1, 1, 0, *[0] * 7]
    chosen = choose_thresholds(scores, y, [100.0] * 10, alert_budget=0.2, review_cost=1.0)
    assert chosen.block == NEVER
    assert chosen.blocks_nothing
    assert chosen.alert_rate_on_validation == 0.0
    assert choose_thresholds(scores, y, [100.0] * 10, alert_budget=0.3, review_cost=1.0).block == 0.9


def test_all_scores_equal_blocks_nothing_unless_the_budget_covers_everyone() -> None:
    scores = np.full(100, 0.37)
    y = np.zeros(100, dtype=int)
    y[:5] = 1
    amounts = np.full(100, 1000.0)
    chosen = choose_thresholds(scores, y, amounts, review_cost=10.0)
    assert (chosen.block, chosen.review) == (NEVER, NEVER)
    assert chosen.decide(scores).tolist() == ["allow"] * 100
    assert chosen.expected_cost_on_validation == 5000.0
    everyone = choose_thresholds(scores, y, amounts, alert_budget=1.0, review_cost=10.0)
    assert everyone.block == 0.37  # 95 false alerts x 10 = 950 < 5000 missed
    assert everyone.expected_cost_on_validation == 950.0


def _brute_force_block(
    scores: npt.NDArray[np.float64],
    y: npt.NDArray[np.int8],
    amounts: npt.NDArray[np.float64],
    budget: float,
    review_cost: float,
) -> float:
    """Try every distinct score (and "never") one at a time with the direct cost function."""
    best_cost, best = float("inf"), NEVER
    for t in [NEVER, *np.unique(scores)[::-1].tolist()]:  # highest first, so equal costs keep the higher one
        if np.count_nonzero(scores >= t) > budget * scores.size + 1e-9:
            break
        cost = expected_cost(scores, y, amounts, t, review_cost).total
        if cost < best_cost - 1e-6:
            best_cost, best = cost, t
    return best


@pytest.mark.parametrize(("seed", "budget", "review_cost"), [(1, 0.02, 5000.0), (2, 0.1, 20_000.0), (3, 0.3, 100.0)])
def test_matches_brute_force_search(seed: int, budget: float, review_cost: float) -> None:
    scores, y, amounts = random_block(3000, seed, decimals=2)
    chosen = choose_thresholds(scores, y, amounts, alert_budget=budget, review_cost=review_cost)
    assert chosen.block == _brute_force_block(scores, y, amounts, budget, review_cost)
    assert chosen.alert_rate_on_validation <= budget
    direct = expected_cost(scores, y, amounts, chosen.block, review_cost)
    assert chosen.expected_cost_on_validation == direct.total


# --- the review band --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("share", "review"),
    [
        (0.0, 0.8),  # empty band
        (0.1, 0.7),  # one more row
        (0.2, 0.6),  # two more rows: 0.7 and 0.6
        (0.15, 0.7),  # 1.5 rows: 1 and 2 are equally close -> the smaller band
        (0.26, 0.5),  # 2.6 rows -> 3 is closer
        (1.0, 0.1),  # more than there is: down to the lowest score, never below it
    ],
)
def test_review_band_by_hand(share: float, review: float) -> None:
    chosen = choose_thresholds(SCORES, LABELS, AMOUNTS, alert_budget=0.5, review_cost=100.0, review_share=share)
    assert chosen.block == 0.8
    assert chosen.review == review
    assert 0.0 <= chosen.review <= chosen.block
    scores = SCORES
    in_band = np.count_nonzero((scores >= chosen.review) & (scores < chosen.block))
    assert chosen.review_rate_on_validation == pytest.approx(in_band / 10)


def test_review_band_holds_about_the_review_share_on_large_blocks() -> None:
    scores, y, amounts = random_block(200_000, 7, decimals=None)
    chosen = choose_thresholds(scores, y, amounts, review_share=0.01)
    band = np.count_nonzero((scores >= chosen.review) & (scores < chosen.block)) / scores.size
    assert band == pytest.approx(0.01, abs=1e-5)
    assert chosen.review_rate_on_validation == pytest.approx(band)


# --- decisions --------------------------------------------------------------------------------------------


def test_decide_bands() -> None:
    t = choose_thresholds(SCORES, LABELS, AMOUNTS, alert_budget=0.5, review_cost=100.0, review_share=0.2)
    assert (t.block, t.review) == (0.8, 0.6)
    scores = np.array([1.0, 0.8, np.nextafter(0.8, 0.0), 0.7, 0.6, np.nextafter(0.6, 0.0), 0.0])
    expected = ["block", "block", "review", "review", "review", "allow", "allow"]
    decisions = t.decide(scores)
    assert decisions.tolist() == expected
    assert decisions.dtype.kind == "U"
    assert [t.decide_one(float(s)) for s in scores] == expected
    assert t.decide(scores.reshape(7, 1)).shape == (7, 1)
    assert t.decide(np.array([])).tolist() == []
    assert t.decide([0.9, 0.1]).tolist() == ["block", "allow"]


@pytest.mark.parametrize("bad", [float("nan"), 1.5, -0.01, float("inf")])
def test_decide_refuses_what_is_not_a_probability(bad: float) -> None:
    t = choose_thresholds(SCORES, LABELS, AMOUNTS)
    with pytest.raises(EvaluationError, match=r"\[0, 1\]"):
        t.decide(np.array([0.2, bad]))
    with pytest.raises(EvaluationError, match=r"\[0, 1\]"):
        t.decide_one(bad)


def test_decide_on_a_million_rows() -> None:
    scores, y, amounts = random_block(1_000_000, 8, fraud_rate=0.01, decimals=None)
    t = choose_thresholds(scores, y, amounts)
    decisions = t.decide(scores)
    assert np.count_nonzero(decisions == "block") == np.count_nonzero(scores >= t.block)
    assert np.count_nonzero(decisions == "review") == np.count_nonzero((scores >= t.review) & (scores < t.block))


# --- edge cases and errors --------------------------------------------------------------------------------


def test_no_fraud_in_the_validation_block_says_widen_it() -> None:
    with pytest.raises(EvaluationError, match=r"no fraud among its 10 rows.*widen the validation block") as caught:
        choose_thresholds(SCORES, np.zeros(10), AMOUNTS)
    assert isinstance(caught.value, PipelineError)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"alert_budget": 1.5}, "alert budget"),
        ({"alert_budget": -0.01}, "alert budget"),
        ({"review_share": 2.0}, "review share"),
        ({"review_cost": -5.0}, "review cost"),
        ({"review_cost": float("nan")}, "review cost"),
    ],
)
def test_bad_parameters_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(EvaluationError, match=message):
        choose_thresholds(SCORES, LABELS, AMOUNTS, **kwargs)


@pytest.mark.parametrize("bad", [1.01, -0.5, float("nan")])
def test_scores_outside_probabilities_are_refused(bad: float) -> None:
    scores = SCORES.copy()
    scores[3] = bad
    with pytest.raises(EvaluationError, match=r"probabilities in \[0, 1\]; row 3"):
        choose_thresholds(scores, LABELS, AMOUNTS)


def test_defaults() -> None:
    assert (DEFAULT_ALERT_BUDGET, DEFAULT_REVIEW_SHARE) == (0.02, 0.01)
    assert 1_000 <= DEFAULT_REVIEW_COST <= 20_000
    chosen = choose_thresholds(SCORES, LABELS, AMOUNTS)
    assert (chosen.alert_budget, chosen.review_cost, chosen.review_share) == (0.02, DEFAULT_REVIEW_COST, 0.01)
    assert chosen.block == NEVER  # 2% of 10 rows is no alert at all


# --- storage ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("budget", [0.0, 0.5])
def test_thresholds_round_trip_through_json(budget: float) -> None:
    chosen = choose_thresholds(SCORES, LABELS, AMOUNTS, alert_budget=budget, review_cost=100.0, review_share=0.2)
    text = json.dumps(chosen.to_dict(), allow_nan=False)  # NEVER is finite, so strict JSON holds it
    restored = Thresholds.from_dict(json.loads(text))
    assert restored == chosen
    assert restored.decide(SCORES).tolist() == chosen.decide(SCORES).tolist()


def test_minimal_thresholds_and_invalid_ones() -> None:
    minimal = {
        "block": 0.9,
        "review": 0.7,
        "alert_budget": 0.02,
        "review_cost": 5000,
        "review_share": 0.01,
        "expected_cost_on_validation": 1.0,
        "alert_rate_on_validation": 0.01,
    }
    restored = Thresholds.from_dict(minimal)
    assert restored.recall_on_validation is None
    assert restored.decide_one(0.8) == "review"
    with pytest.raises(EvaluationError, match="lack"):
        Thresholds.from_dict({k: v for k, v in minimal.items() if k != "block"})
    with pytest.raises(EvaluationError, match="above the block threshold"):
        Thresholds.from_dict({**minimal, "review": 0.95})
    with pytest.raises(EvaluationError, match="block threshold must be a number in"):
        Thresholds.from_dict({**minimal, "block": 2.0})
    with pytest.raises(EvaluationError, match="not numbers"):
        Thresholds.from_dict({**minimal, "block": "high"})


# --- scale ------------------------------------------------------------------------------------------------


def test_a_million_rows_give_a_cost_no_feasible_threshold_beats() -> None:
    scores, y, amounts = random_block(1_000_000, 9, fraud_rate=0.01, decimals=4)
    chosen = choose_thresholds(scores, y, amounts)
    assert 0.0 < chosen.alert_rate_on_validation <= DEFAULT_ALERT_BUDGET
    assert (
        chosen.expected_cost_on_validation == expected_cost(scores, y, amounts, chosen.block, DEFAULT_REVIEW_COST).total
    )
    distinct = np.unique(scores)
    position = int(np.searchsorted(distinct, chosen.block))
    rng = np.random.default_rng(0)
    candidates = {float(distinct[position + 1]), *rng.choice(distinct[position:], 20).tolist()}
    if position > 0:  # the next lower threshold must break the budget or cost at least as much
        lower = float(distinct[position - 1])
        over_budget = np.count_nonzero(scores >= lower) > DEFAULT_ALERT_BUDGET * scores.size
        assert over_budget or expected_cost(scores, y, amounts, lower, DEFAULT_REVIEW_COST).total >= (
            chosen.expected_cost_on_validation
        )
    for t in candidates:
        assert expected_cost(scores, y, amounts, t, DEFAULT_REVIEW_COST).total >= chosen.expected_cost_on_validation
