"""The canary benchmark's own arithmetic: the Wilson interval and the naive test it compares against."""

from __future__ import annotations

import pytest

from benchmarks.canary_analysis import HARMLESS, Scenario, fixed_schedule_run, naive_p_values, wilson
from serving.canary.analysis import AnalysisConfig, AnalysisState, update
from serving.canary.rollout import RolloutSpec
from serving.canary.simulation import SCENARIOS, TrafficSimulator


def test_wilson_interval_covers_the_proportion() -> None:
    low, high = wilson(25, 500)
    assert low < 0.05 < high
    assert wilson(0, 500) == pytest.approx((0.0, 0.0076), abs=5e-4)


def test_naive_p_values_are_small_for_a_broken_challenger_and_not_for_the_same_model() -> None:
    config = AnalysisConfig()
    for scenario, small in (("latency_up", True), ("same_model", False)):
        # warm already: the latency check counts these windows
        simulator, state = (
            TrafficSimulator(*SCENARIOS[scenario], seed=1),
            AnalysisState(started_at=-config.warmup_seconds),
        )
        for index in range(3):
            state = update(state, simulator.window(index * 10.0, 10.0, 1000, 25, shadow=False), config)
        p = naive_p_values(state, (750, 3000), 0.25)
        assert set(p) >= {"errors", "latency", "blocks", "reviews", "scores", "sample_ratio"}
        assert (p["latency"] < 1e-6) is small


def test_fixed_schedule_run_flags_a_broken_challenger_both_ways() -> None:
    spec = RolloutSpec("1", "2", min_requests=5000, min_seconds=0.0)  # 5 windows a phase: past the warm-up
    broken = Scenario("latency", "", *SCENARIOS["latency_up"])
    assert fixed_schedule_run(broken, seed=2, spec=spec) == (True, True)
    assert HARMLESS[0].challenger == HARMLESS[0].champion
