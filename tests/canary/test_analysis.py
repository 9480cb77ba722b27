"""The analysis on synthetic windows: each broken scenario fails its own check, harmless ones fail nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from serving.canary.analysis import (
    CHECKS,
    AnalysisConfig,
    AnalysisState,
    CheckResult,
    CheckStatus,
    analyse,
)
from serving.canary.evidence import ArmLabels, ArmSample, LabelSample, Window
from serving.canary.simulation import SCENARIOS, ArmModel, Traffic, TrafficSimulator

CONFIG = AnalysisConfig()


def _run(
    simulator: TrafficSimulator,
    phases: list[tuple[int, int]],
    *,
    requests: int = 1000,
    load: float = 1.0,
) -> tuple[AnalysisState, dict[str, CheckResult], int]:
    """Feed (weight %, windows) phases (weight 0 = shadow) until a check fails; return the state, verdicts and
    the number of requests it took."""
    state, results, now, seen = AnalysisState(), dict[str, CheckResult](), 0.0, 0
    for weight, windows in phases:
        for _ in range(windows):
            window = simulator.window(now, 10.0, requests, weight, shadow=weight == 0, load=load)
            now += 10.0
            seen += requests
            state, results = analyse(state, window, CONFIG)
            if any(r.status is CheckStatus.FAIL for r in results.values()):
                return state, results, seen
    return state, results, seen


def _failed(results: dict[str, CheckResult]) -> set[str]:
    return {name for name, result in results.items() if result.status is CheckStatus.FAIL}


ROLLOUT = [(0, 6), (5, 6), (25, 6), (50, 6)]


@pytest.mark.parametrize("scenario", ["same_model", "equal_quality"])
def test_harmless_challengers_fail_nothing_and_the_checks_speak(scenario: str) -> None:
    _, results, _ = _run(TrafficSimulator(*SCENARIOS[scenario], seed=3), ROLLOUT)
    assert _failed(results) == set()
    assert {name for name, r in results.items() if r.status is CheckStatus.PASS} == set(CHECKS) - {"labels"}
    assert results["labels"].status is CheckStatus.INCONCLUSIVE


@pytest.mark.parametrize(
    ("scenario", "check"),
    [("latency_up", "latency"), ("errors_up", "errors"), ("blocks_5x", "blocks")],
)
def test_broken_challengers_fail_their_check_in_shadow(scenario: str, check: str) -> None:
    _, results, _ = _run(TrafficSimulator(*SCENARIOS[scenario], seed=1), [(0, 30)])
    assert check in _failed(results), results[check].reason
    p_value = results[check].p_value
    assert p_value is not None and p_value <= results[check].alpha


def test_higher_scores_fail_the_score_check_in_shadow_and_in_weighted_steps() -> None:
    _, shadow, _ = _run(TrafficSimulator(*SCENARIOS["scores_up"], seed=2), [(0, 5)])
    assert "scores" in _failed(shadow)
    _, weighted, _ = _run(TrafficSimulator(*SCENARIOS["scores_up"], seed=2), [(25, 10)])
    assert "scores" in _failed(weighted)
    assert weighted["scores"].mode == "split"


def test_a_broken_block_threshold_fails_on_the_split_at_fraud_scale_rates() -> None:
    """0.3 % -> 1.5 % blocks with the arms on different transactions (weighted step, no pairs)."""
    simulator = TrafficSimulator(ArmModel(), ArmModel(block_multiplier=5.0), Traffic(block_rate=0.003), seed=4)
    _, results, _ = _run(simulator, [(50, 30)])
    assert "blocks" in _failed(results)
    assert results["blocks"].mode == "split"
    assert results["blocks"].sample_size["challenger_events"] > results["blocks"].sample_size["champion_events"]


def test_improvements_never_fail() -> None:
    better = ArmModel(logit_shift=-0.7, extra_latency_ms=0.0, latency_factor=0.5, error_rate=0.0)
    simulator = TrafficSimulator(ArmModel(error_rate=0.01), better, seed=5)
    _, results, _ = _run(simulator, ROLLOUT)
    assert _failed(results) == set()


def test_a_load_spike_on_both_arms_fails_nothing() -> None:
    _, results, _ = _run(TrafficSimulator(*SCENARIOS["same_model"], seed=6), ROLLOUT, load=5.0)
    assert _failed(results) == set()


def test_added_latency_fails_even_during_a_load_spike() -> None:
    _, results, _ = _run(TrafficSimulator(*SCENARIOS["latency_up"], seed=6), [(25, 10)], load=3.0)
    assert "latency" in _failed(results)


def _arm(requests: int, rng: np.random.Generator) -> ArmSample:
    scores = rng.beta(0.4, 40.0, requests)
    return ArmSample.from_answers(
        latencies_ms=rng.lognormal(1.4, 0.3, requests),
        failed=np.zeros(requests, bool),
        scores=scores,
        decisions=np.zeros(requests, np.int8),
    )


def test_a_sample_ratio_mismatch_fails_the_sample_ratio_check() -> None:
    """The challenger gets 3 % of requests where 5 % were configured (a splitter dropping its answers)."""
    rng = np.random.default_rng(8)
    state, results = AnalysisState(), dict[str, CheckResult]()
    for index in range(20):
        window = Window(index, index + 1.0, _arm(970, rng), _arm(30, rng), expected_challenger_share=0.05, shadow=False)
        state, results = analyse(state, window, CONFIG)
    assert "sample_ratio" in _failed(results)
    assert "sample-ratio mismatch" in results["sample_ratio"].reason


def _labels(rng: np.random.Generator, n: int, recall: float) -> ArmLabels:
    """n labelled rows, 20 % fraud; frauds get a score above any legitimate one with probability `recall`."""
    y = (rng.random(n) < 0.2).astype(np.int8)
    caught = rng.random(n) < recall
    scores = np.where(y == 1, np.where(caught, 0.99, 0.001), rng.uniform(0.0, 0.5, n) * 0.01)
    return ArmLabels(y_true=y, scores=scores)


def _label_windows(recall_challenger: float, windows: int) -> dict[str, CheckResult]:
    rng = np.random.default_rng(9)
    state, results = AnalysisState(), dict[str, CheckResult]()
    for index in range(windows):
        labels = LabelSample(champion=_labels(rng, 200, 0.8), challenger=_labels(rng, 200, recall_challenger))
        window = Window(index, index + 1.0, _arm(1000, rng), _arm(1000, rng), 0.5, shadow=False, labels=labels)
        state, results = analyse(state, window, CONFIG)
    return results


def test_label_check_needs_labels_passes_equal_recall_and_fails_a_drop() -> None:
    equal = _label_windows(0.8, 45)["labels"]
    assert equal.status is CheckStatus.PASS, equal.reason
    assert equal.interval is not None and equal.interval[0] is not None and equal.interval[0] >= -0.1
    worse = _label_windows(0.5, 10)["labels"]
    assert worse.status is CheckStatus.FAIL, worse.reason
    assert worse.details["challenger_recall"] is not None


def test_no_labels_is_inconclusive_never_pass() -> None:
    rng = np.random.default_rng(10)
    window = Window(0.0, 1.0, _arm(1000, rng), _arm(1000, rng), 0.5, shadow=False)
    _, results = analyse(AnalysisState(), window, CONFIG)
    assert results["labels"].status is CheckStatus.INCONCLUSIVE


def test_state_round_trips_through_json_and_gives_the_same_verdicts() -> None:
    simulator = TrafficSimulator(*SCENARIOS["equal_quality"], seed=11)
    state, _, _ = _run(simulator, [(0, 2), (5, 2)])
    restored = AnalysisState.from_dict(json.loads(json.dumps(state.to_dict())))
    window = simulator.window(1000.0, 10.0, 1000, 5, shadow=False)
    _, expected = analyse(state, window, CONFIG)
    _, again = analyse(restored, window, CONFIG)
    assert {k: v.to_dict() for k, v in again.items()} == {k: v.to_dict() for k, v in expected.items()}
    for result in expected.values():
        assert CheckResult.from_dict(json.loads(json.dumps(result.to_dict()))).to_dict() == result.to_dict()


def test_windows_must_come_in_time_order() -> None:
    rng = np.random.default_rng(12)
    state, _ = analyse(AnalysisState(), Window(10.0, 20.0, _arm(10, rng), _arm(10, rng), 0.5, False), CONFIG)
    with pytest.raises(ValueError, match="time order"):
        analyse(state, Window(0.0, 10.0, _arm(10, rng), _arm(10, rng), 0.5, False), CONFIG)


def test_config_refuses_bad_values_and_round_trips() -> None:
    with pytest.raises(ValueError, match="alpha"):
        AnalysisConfig(alpha=0.0)
    with pytest.raises(ValueError, match="decision_tolerance"):
        AnalysisConfig(decision_tolerance=0.5)
    with pytest.raises(ValueError, match="shadow_detectable_ratio"):
        AnalysisConfig(shadow_detectable_ratio=1.1)
    with pytest.raises(ValueError, match="unknown field"):
        AnalysisConfig.from_dict({"alhpa": 0.1})
    assert AnalysisConfig.from_dict(CONFIG.to_dict()) == CONFIG
    assert CONFIG.check_alpha("blocks") == pytest.approx(0.05 / len(CHECKS))
