"""Synthetic windows of fraud-scoring traffic, for measuring the rollout analysis over many seeds.

The live runtime produces the same `Window` objects from real predictors; this module makes them from a model of
the traffic, fast enough for thousands of simulated rollouts (`benchmarks/canary_analysis.py`, the scenario tests
in `tests/canary/`). It is not used when serving.

Traffic model (PaySim-like, per transaction):
- fraud with probability ``fraud_rate`` (default 0.3 %);
- a reference score from a heavy-tailed beta: legitimate Beta(0.4, 40) (mean 1 %, long upper tail), fraud
  Beta(4, 1.5); each arm's score is the reference moved in logit space by the arm's ``logit_shift`` plus its own
  independent ``noise_sd`` (0 for both arms: the same model, identical scores);
- decisions from fixed score thresholds that the champion's calibration sets for ``block_rate`` (0.04 %) and
  ``review_rate`` (0.4 %); a broken challenger uses a lower block threshold (``block_multiplier`` x the rate);
- request latency lognormal around ``latency_median_ms`` (sigma 0.35), times the window's ``load`` (a spike hits
  both arms; a stall hits one, `Load`), plus the arm's ``extra_latency_ms``; failures with probability
  ``error_rate``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypeAlias

import numpy as np
from scipy.special import expit, logit

from serving.canary.evidence import ArmSample, FloatArray, Window
from serving.canary.rollout import Phase, RolloutSpec, RolloutState, applied, reconcile, start


@dataclass(frozen=True)
class ArmModel:
    """How one arm scores and serves, relative to the reference model."""

    logit_shift: float = 0.0
    noise_sd: float = 0.0
    block_multiplier: float = 1.0
    extra_latency_ms: float = 0.0
    latency_factor: float = 1.0
    error_rate: float = 0.001


@dataclass(frozen=True)
class Traffic:
    """The population both arms see."""

    fraud_rate: float = 0.003
    block_rate: float = 0.0004
    review_rate: float = 0.004
    latency_median_ms: float = 4.0
    latency_sigma: float = 0.35


SCENARIOS: Final[dict[str, tuple[ArmModel, ArmModel]]] = {
    "same_model": (ArmModel(), ArmModel()),
    "equal_quality": (ArmModel(noise_sd=0.3), ArmModel(noise_sd=0.3)),
    "blocks_4x": (ArmModel(), ArmModel(block_multiplier=4.0)),
    "blocks_5x": (ArmModel(), ArmModel(block_multiplier=5.0)),
    "scores_up": (ArmModel(), ArmModel(logit_shift=0.5)),
    "latency_up": (ArmModel(), ArmModel(extra_latency_ms=20.0)),
    "errors_up": (ArmModel(), ArmModel(error_rate=0.02)),
}
"""(champion, challenger) per scenario: A/A, an equal-quality different model, and the broken challengers."""


Load: TypeAlias = float | tuple[float, float]
"""What multiplies the latencies in a window: one factor for both arms, or (champion, challenger) factors."""


def _reference_scores(traffic: Traffic, n: int, rng: np.random.Generator) -> FloatArray:
    fraud = rng.random(n) < traffic.fraud_rate
    scores = np.where(fraud, rng.beta(4.0, 1.5, n), rng.beta(0.4, 40.0, n))
    return np.asarray(np.clip(scores, 1e-9, 1 - 1e-9), dtype=np.float64)


@functools.cache
def _threshold(traffic: Traffic, rate: float) -> float:
    """The score above which `rate` of the reference population lies, on a large fixed sample (drawn once)."""
    reference = _reference_scores(traffic, 1_000_000, np.random.default_rng(12345))
    return float(np.quantile(reference, 1.0 - rate))


class TrafficSimulator:
    """Draws windows of both arms for a scenario; thresholds are calibrated once on a large reference sample."""

    def __init__(self, champion: ArmModel, challenger: ArmModel, traffic: Traffic | None = None, seed: int = 0):
        self.champion = champion
        self.challenger = challenger
        self.traffic = traffic or Traffic()
        self.rng = np.random.default_rng(seed)
        rates = self.traffic.block_rate, self.traffic.review_rate
        self.block_threshold = _threshold(self.traffic, rates[0])
        self.review_threshold = _threshold(self.traffic, rates[0] + rates[1])
        self.challenger_block_threshold = _threshold(self.traffic, rates[0] * challenger.block_multiplier)

    def _reference_scores(self, n: int, rng: np.random.Generator) -> FloatArray:
        return _reference_scores(self.traffic, n, rng)

    def _scores(self, reference: FloatArray, arm: ArmModel) -> FloatArray:
        if arm.logit_shift == 0.0 and arm.noise_sd == 0.0:
            return reference
        moved = logit(reference) + arm.logit_shift + arm.noise_sd * self.rng.standard_normal(reference.size)
        return np.asarray(expit(moved), dtype=np.float64)

    def _decisions(self, scores: FloatArray, block_threshold: float) -> np.ndarray:
        return np.where(scores >= block_threshold, 2, np.where(scores >= self.review_threshold, 1, 0))

    def _latencies(self, n: int, arm: ArmModel, load: float) -> FloatArray:
        base = self.traffic.latency_median_ms * np.exp(self.traffic.latency_sigma * self.rng.standard_normal(n))
        return np.asarray(base * load * arm.latency_factor + arm.extra_latency_ms, dtype=np.float64)

    def _arm(self, reference: FloatArray, arm: ArmModel, block_threshold: float, load: float) -> ArmSample:
        n = reference.size
        failed = self.rng.random(n) < arm.error_rate
        scores = self._scores(reference, arm)[~failed]
        return ArmSample.from_answers(
            latencies_ms=self._latencies(n, arm, load),
            failed=failed,
            scores=scores,
            decisions=self._decisions(scores, block_threshold),
        )

    def window(
        self, start: float, seconds: float, requests: int, weight_percent: float, *, shadow: bool, load: Load = 1.0
    ) -> Window:
        """One window of `requests` transactions; `weight_percent` of them go to the challenger unless in shadow.

        Routing is a fair coin per request with the configured share (the splitter hashes accounts, which for
        accounts seen once is the same thing). `load` multiplies latencies: both arms', or (champion, challenger).
        """
        champion_load, challenger_load = load if isinstance(load, tuple) else (load, load)
        reference = self._reference_scores(requests, self.rng)
        if shadow:
            champion_scores = self._scores(reference, self.champion)
            challenger_scores = self._scores(reference, self.challenger)
            champion_failed = self.rng.random(requests) < self.champion.error_rate
            challenger_failed = self.rng.random(requests) < self.challenger.error_rate
            champion_decisions = self._decisions(champion_scores, self.block_threshold)
            challenger_decisions = self._decisions(challenger_scores, self.challenger_block_threshold)
            both = ~champion_failed & ~challenger_failed
            return Window(
                start=start,
                end=start + seconds,
                champion=ArmSample.from_answers(
                    latencies_ms=self._latencies(requests, self.champion, champion_load),
                    failed=champion_failed,
                    scores=champion_scores[~champion_failed],
                    decisions=champion_decisions[~champion_failed],
                ),
                challenger=ArmSample.from_answers(
                    latencies_ms=self._latencies(requests, self.challenger, challenger_load),
                    failed=challenger_failed,
                    scores=challenger_scores[~challenger_failed],
                    decisions=challenger_decisions[~challenger_failed],
                ),
                expected_challenger_share=0.0,
                shadow=True,
                paired_scores=(champion_scores[both], challenger_scores[both]),
                paired_decisions=(
                    champion_decisions[both].astype(np.int8),
                    challenger_decisions[both].astype(np.int8),
                ),
            )
        share = weight_percent / 100.0
        to_challenger = self.rng.random(requests) < share
        return Window(
            start=start,
            end=start + seconds,
            champion=self._arm(reference[~to_challenger], self.champion, self.block_threshold, champion_load),
            challenger=self._arm(
                reference[to_challenger], self.challenger, self.challenger_block_threshold, challenger_load
            ),
            expected_challenger_share=share,
            shadow=False,
        )


@dataclass(frozen=True)
class SimulatedRollout:
    """How a simulated rollout ended: its final state and the requests it took (both arms, shadow included)."""

    state: RolloutState
    requests: int
    windows: int


def simulate_rollout(
    spec: RolloutSpec,
    simulator: TrafficSimulator,
    *,
    rate: float = 100.0,
    window_seconds: float = 10.0,
    max_windows: int = 400,
    load: Callable[[int], Load] = lambda _: 1.0,
) -> SimulatedRollout:
    """Drive the real state machine with simulated windows until it ends or `max_windows` pass.

    Actions are applied at once (the simulator routes by the state's weight), so each window follows the
    routing the state asks for. `load(i)` multiplies the latencies in window i: both arms' (a load spike), or
    (champion, challenger) each its own (a stall of one process).
    """
    now = 1_700_000_000.0
    state, _ = start(spec, now)
    state = applied(state)
    requests_per_window = round(rate * window_seconds)
    total = 0
    for index in range(max_windows):
        if state.terminal or state.phase is Phase.PAUSED:
            return SimulatedRollout(state, total, index)
        window = simulator.window(
            now, window_seconds, requests_per_window, state.weight, shadow=state.shadow, load=load(index)
        )
        now += window_seconds
        total += requests_per_window
        state, _ = reconcile(state, window, now)
        state = applied(state)
    return SimulatedRollout(state, total, max_windows)
