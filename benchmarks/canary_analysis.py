"""Canary analysis benchmark: false rollbacks of A/A rollouts, and how fast broken challengers are rolled back.

Simulated at the analysis level (`serving.canary.simulation`): PaySim-like traffic (0.3 % fraud, heavy-tailed
beta scores, 0.04 % blocks and 0.4 % reviews at the champion's thresholds, lognormal latency around 4 ms,
0.1 % errors), fed window after window into the real state machine (`serving.canary.rollout`) at its default
settings: shadow, then 5 -> 25 -> 50 % steps, then promotion; each step at least 2,000 requests and 60 s;
10 s windows at 100 requests/s, so 6,000 requests per step; shadow lasts longer, until the block check could
catch 2.5x the champion's rate (~20,000 requests at 0.04 % blocks), so a whole rollout takes ~37,000.

For each seed and scenario it reports:

- harmless challengers (the same model on both arms; an equal-quality different model; a load spike that
  triples latency on both arms during the 5 % and 25 % steps; one process, either arm at random, stalling in
  5 % of windows): the share of rollouts wrongly rolled back, with a 95 % Wilson interval; beside it, for the A/A
  scenario (every harmless one with ``--naive-all``), the same windows judged by a *naive* test, the usual
  fixed-sample one-sided test (Fisher's exact / sign test / binomial, same Bonferroni split over the checks, no
  tolerance, every request an independent draw) repeated at every window, and the anytime-valid tests with every
  tolerance set to zero (so the error control is shown not to come from the tolerances);
- broken challengers: the share rolled back (detection), the requests seen before the rollback (median and
  90th percentile over the detected seeds, shadow requests included), the phase and the check that fired.

    .venv/bin/python benchmarks/canary_analysis.py --seeds 500 --variants default,no-shadow

All numbers are counts over seeds; the run is deterministic for given ``--seeds`` / ``--broken-seeds``.
``--only NAME,...`` runs some scenarios (one process each spreads a run over the cores), ``--skip-harmless`` the
broken part alone.

Last run (2026-12-06, latency judged on p50/p90/p99 exceedances in the weighted steps, floors +20 % and +10 ms,
30 s warm-up, one window weighing at most x4; load average 8-10, one process per scenario at nice 5):
A/A (500 seeds) wrongful rollbacks 0.0 % [0, 0.8] (zero tolerance 0.6 % [0.2, 1.7], naive test at every look
10.8 % [8.4, 13.8]), all 500 promoted after a median 37,000 requests (1,101 s for the three ways of 500 seeds);
equal quality (500 seeds) 0.2 % [0.0, 1.1] (1 on reviews; 497 promoted, 2 paused), A/A + load spike (500) 0.0 %
[0.0, 0.8], A/A + stalls (200) 0.0 % [0.0, 1.9]. Broken challengers at default settings (200 seeds each),
detection / median / p90 requests to rollback: blocks 0.04->0.16 % 98.5 % [95.7, 99.5] / 10,000 / 14,000 (186 in
shadow); 0.04->0.20 % 100 % / 7,000 / 10,100; 0.3->1.2 % 100 % / 2,000 / 2,000; scores logit+0.5 100 % / 1,000;
latency +20 ms and +250 ms 100 % / 23,000 / 34,000 (all at the 5 % step: shadow calls are not judged on latency);
errors 0.1->2 % 100 % / 1,000 / 2,000. Without shadow: latency 100 % / 7,000; blocks 0.04->0.16 % 10.5 %
[7.0, 15.5]. The broken part (both variants) took 1,557 s at nice 15 and load 7-10.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Run as a script, Python puts benchmarks/ first on sys.path, where benchmarks/serving.py would shadow the
# `serving` package; the repository root goes there instead.
if sys.path and Path(sys.path[0]).resolve() == REPO / "benchmarks":
    sys.path.pop(0)
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from scipy import stats as scipy_stats  # noqa: E402

from serving.canary.analysis import CHECKS, AnalysisConfig, AnalysisState, CheckStatus, judge, update  # noqa: E402
from serving.canary.rollout import Phase, RolloutSpec  # noqa: E402
from serving.canary.simulation import (  # noqa: E402
    SCENARIOS,
    ArmModel,
    Load,
    Traffic,
    TrafficSimulator,
    simulate_rollout,
)

RATE = 100.0
WINDOW_SECONDS = 10.0
DEFAULT_TRAFFIC = Traffic()


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    champion: ArmModel
    challenger: ArmModel
    traffic: Traffic = DEFAULT_TRAFFIC
    load: str = "steady"
    """``steady``; ``spike``: latency x3 on both arms from the 8th to the 17th window (the 5 % and 25 % steps at
    default settings); ``stalls``: in 5 % of windows one process, either arm at random, stalls (latency x20)."""


def _load(scenario: Scenario, seed: int) -> Callable[[int], Load]:
    """Window index -> the latency factor(s) of that window, for one seed of a scenario."""
    if scenario.load == "spike":
        return lambda index: 3.0 if 7 <= index < 17 else 1.0
    if scenario.load == "stalls":
        rng = np.random.default_rng(1_000_003 + seed)
        stalled, on_challenger = rng.random(1000) < 0.05, rng.random(1000) < 0.5

        def stalls(index: int) -> Load:
            if not stalled[index]:
                return 1.0
            return (1.0, 20.0) if on_challenger[index] else (20.0, 1.0)

        return stalls
    return lambda _: 1.0


HARMLESS = [
    Scenario("A/A same model", "the same model on both arms", *SCENARIOS["same_model"]),
    Scenario("equal quality", "two different models of equal quality", *SCENARIOS["equal_quality"]),
    Scenario("A/A + load spike", "same model, latency x3 on both arms", *SCENARIOS["same_model"], load="spike"),
    Scenario("A/A + stalls", "same model, one process stalls now and then", *SCENARIOS["same_model"], load="stalls"),
]
BROKEN = [
    Scenario("blocks 0.04->0.16%", "block threshold broken, 4x the block rate", *SCENARIOS["blocks_4x"]),
    Scenario("blocks 0.04->0.20%", "block threshold broken, 5x the block rate", *SCENARIOS["blocks_5x"]),
    Scenario(
        "blocks 0.3->1.2%",
        "4x the block rate at a common block rate",
        *SCENARIOS["blocks_4x"],
        traffic=Traffic(block_rate=0.003),
    ),
    Scenario("scores logit+0.5", "every score moved up by 0.5 in logit", *SCENARIOS["scores_up"]),
    Scenario("latency +20ms", "20 ms added to every challenger request", *SCENARIOS["latency_up"]),
    Scenario(
        "latency +250ms", "250 ms added to every challenger request", ArmModel(), ArmModel(extra_latency_ms=250.0)
    ),
    Scenario("errors 0.1->2%", "2 % of challenger requests fail", *SCENARIOS["errors_up"]),
]

ZERO_TOLERANCE = AnalysisConfig(
    error_tolerance=1.0,
    decision_tolerance=1.0,
    score_tolerance=1.0,
    sample_ratio_tolerance=1.0,
    latency_tolerance_ratio=0.0,
    latency_tolerance_ms=0.0,
)


def wilson(successes: int, trials: int) -> tuple[float, float]:
    """95 % Wilson interval of a proportion."""
    if trials == 0:
        return 0.0, 1.0
    z, p = 1.959964, successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


def naive_p_values(state: AnalysisState, step_requests: tuple[int, int], share: float) -> dict[str, float]:
    """Fixed-sample one-sided p-values of every check on the data so far, as a naive analysis computes them.

    Split evidence: Fisher's exact test on the pooled 2x2 table; paired: the sign test on discordant pairs;
    scores and latency: the smallest p over the quantile levels, times their number (latency: every request an
    independent draw, no cap per window); sample ratio: a two-sided binomial test on the current step.
    """

    def split(key: str) -> float:
        e = state.evidence[key]
        events = e.challenger_events + e.champion_events
        total = e.challenger_exposure + e.champion_exposure
        return float(scipy_stats.hypergeom.sf(e.challenger_events - 1, total, e.challenger_exposure, events))

    def paired(key: str) -> float:
        e = state.evidence[key]
        return float(scipy_stats.binom.sf(e.challenger_events - 1, e.challenger_events + e.champion_events, 0.5))

    result: dict[str, float] = {}
    if "errors" in state.evidence:
        result["errors"] = split("errors")
    latency = [k for k in state.evidence if k.startswith("latency/") and not k.endswith("/capped")]
    if latency:
        result["latency"] = min(1.0, min(split(k) for k in latency) * len(latency))
    for check in ("blocks", "reviews"):
        p = [paired(k) for k in (f"{check}/paired",) if k in state.evidence]
        p += [split(k) for k in (f"{check}/split",) if k in state.evidence]
        if p:
            result[check] = min(p) * len(p)
    levels = [k for k in state.evidence if k.startswith("scores/")]
    if levels:
        p = [paired(k) if "/paired/" in k else split(k) for k in levels]
        result["scores"] = min(1.0, min(p) * len(p))
    challenger, total = step_requests
    if 0.0 < share < 1.0 and total:
        result["sample_ratio"] = float(scipy_stats.binomtest(challenger, total, share).pvalue)
    return result


def fixed_schedule_run(scenario: Scenario, seed: int, spec: RolloutSpec) -> tuple[bool, bool]:
    """Shadow then each weighted step for the requests the state machine needs at its minimums; returns whether
    the naive test and the zero-tolerance anytime-valid test would have rolled back at some window."""
    simulator = TrafficSimulator(scenario.champion, scenario.challenger, scenario.traffic, seed=seed)
    load = _load(scenario, seed)
    per_window = round(RATE * WINDOW_SECONDS)
    windows_per_step = math.ceil(max(spec.min_requests, spec.min_seconds * RATE) / per_window)
    phases = ([0] if spec.shadow else []) + list(spec.weighted_steps)
    alpha = spec.analysis.alpha / len(CHECKS)
    naive_state, zero_state = AnalysisState(), AnalysisState()
    naive = zero = False
    now, index = 0.0, 0
    for weight in phases:
        step_challenger = step_total = 0
        for _ in range(windows_per_step):
            window = simulator.window(now, WINDOW_SECONDS, per_window, weight, shadow=weight == 0, load=load(index))
            now, index = now + WINDOW_SECONDS, index + 1
            if weight:
                step_challenger += window.challenger.requests
                step_total += window.challenger.requests + window.champion.requests
            if not naive:
                naive_state = update(naive_state, window, spec.analysis)
                p = naive_p_values(naive_state, (step_challenger, step_total), weight / 100)
                naive = any(value <= alpha for value in p.values())
            if not zero:
                zero_state = update(zero_state, window, ZERO_TOLERANCE)
                verdicts = judge(zero_state, ZERO_TOLERANCE, shadow=weight == 0)
                zero = any(v.status is CheckStatus.FAIL for v in verdicts.values())
            if naive and zero:
                return naive, zero
    return naive, zero


@dataclass
class Outcome:
    phase: Phase
    requests: int
    stopped_at: str
    checks: tuple[str, ...]


def rollout(scenario: Scenario, seed: int, spec: RolloutSpec, max_windows: int = 400) -> Outcome:
    simulator = TrafficSimulator(scenario.champion, scenario.challenger, scenario.traffic, seed=seed)
    result = simulate_rollout(
        spec, simulator, rate=RATE, window_seconds=WINDOW_SECONDS, load=_load(scenario, seed), max_windows=max_windows
    )
    state = result.state
    last = state.history[-1]
    # the phase it was in when it stopped: shadow, or the weight of the step it had entered last
    stopped_at = "shadow" if last.from_phase is Phase.SHADOW else f"{state.history[-2].weight}%"
    failed = tuple(name for name, check in state.checks.items() if check["status"] == "fail")
    return Outcome(state.phase, result.requests, stopped_at, failed)


def _percent(count: int, total: int) -> str:
    low, high = wilson(count, total)
    return f"{count / total:6.1%} [{low:.1%}, {high:.1%}]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=500, help="simulated rollouts per harmless scenario (default 500)")
    parser.add_argument(
        "--broken-seeds", type=int, default=200, help="simulated rollouts per broken scenario and variant (default 200)"
    )
    parser.add_argument("--skip-naive", action="store_true", help="skip the naive and zero-tolerance comparison")
    parser.add_argument(
        "--naive-all",
        action="store_true",
        help="compare with the naive and zero-tolerance tests on every harmless scenario (default: A/A only)",
    )
    parser.add_argument("--skip-harmless", action="store_true", help="skip the harmless scenarios (A/A and co.)")
    parser.add_argument(
        "--only",
        default="",
        help="run only the scenarios whose names are given, comma-separated (e.g. 'A/A same model,equal quality')",
    )
    parser.add_argument(
        "--variants",
        default="default,no-shadow,shadow-until-rollback",
        help="broken-challenger variants to run, comma-separated (default: all three)",
    )
    args = parser.parse_args(argv)
    only = {name.strip() for name in args.only.split(",") if name.strip()}
    known = {scenario.name for scenario in HARMLESS + BROKEN}
    if only - known:
        parser.error(f"--only: unknown {', '.join(sorted(only - known))}; choose from {', '.join(sorted(known))}")
    harmless = [s for s in HARMLESS if not only or s.name in only]
    broken = [s for s in BROKEN if not only or s.name in only]
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)  # progress line by line when piped to a file
    spec = RolloutSpec(champion_version="1", challenger_version="2")
    print(
        f"canary analysis benchmark: {args.seeds} seeds per harmless scenario, {args.broken_seeds} per broken one; "
        f"default settings: shadow, steps "
        f"{','.join(map(str, spec.steps))} (100 = promotion), min_requests {spec.min_requests}, min_seconds "
        f"{spec.min_seconds:g}, alpha {spec.analysis.alpha} over {len(CHECKS)} checks; "
        f"{RATE:g} requests/s in {WINDOW_SECONDS:g} s windows"
    )
    started = time.perf_counter()

    if not args.skip_harmless:
        print("\nharmless challengers: wrongful rollbacks (95 % Wilson interval)")
        print(
            f"{'scenario':<20} {'anytime-valid (default)':>28} {'anytime-valid, 0 tolerance':>28} "
            f"{'naive, every look':>28}"
        )
    for scenario in [] if args.skip_harmless else harmless:
        outcomes = [rollout(scenario, seed, spec) for seed in range(args.seeds)]
        rolled = sum(o.phase is Phase.ROLLED_BACK for o in outcomes)
        promoted = sum(o.phase is Phase.PROMOTED for o in outcomes)
        if args.skip_naive or (scenario is not HARMLESS[0] and not args.naive_all):
            naive_text = zero_text = "-"
        else:
            pairs = [fixed_schedule_run(scenario, seed, spec) for seed in range(args.seeds)]
            naive_text = _percent(sum(n for n, _ in pairs), args.seeds)
            zero_text = _percent(sum(z for _, z in pairs), args.seeds)
        print(f"{scenario.name:<20} {_percent(rolled, args.seeds):>28} {zero_text:>28} {naive_text:>28}")
        fired = Counter(check for o in outcomes for check in o.checks)
        requests = np.median([o.requests for o in outcomes if o.phase is Phase.PROMOTED] or [0])
        print(
            f"{'':<20} promoted {promoted}/{args.seeds} (median {requests:.0f} requests), "
            f"paused {sum(o.phase is Phase.PAUSED for o in outcomes)}, checks that fired: {dict(fired) or 'none'}"
        )

    variants = {
        "default": ("default settings (shadow, 5, 25, 50 %)", spec, 400),
        "no-shadow": ("without shadow (5, 25, 50 % steps only)", replace(spec, shadow=False), 400),
        "shadow-until-rollback": (
            "shadow kept until rollback (at most 100,000 requests)",
            replace(spec, min_requests=10**9),
            100,
        ),
    }
    chosen = [name.strip() for name in args.variants.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in variants]
    if unknown:
        parser.error(f"--variants: unknown {', '.join(unknown)}; choose from {', '.join(variants)}")
    for title, variant, max_windows in (variants[name] for name in chosen):
        print(f"\nbroken challengers, {title}: rolled back before promotion")
        print(f"{'scenario':<20} {'detected (95 % CI)':>28} {'requests median':>16} {'p90':>8}  where / which check")
        for scenario in broken:
            outcomes = [rollout(scenario, seed, variant, max_windows) for seed in range(args.broken_seeds)]
            detected = [o for o in outcomes if o.phase is Phase.ROLLED_BACK]
            requests = np.array([o.requests for o in detected]) if detected else np.array([np.nan])
            where = Counter(o.stopped_at for o in detected)
            which = Counter(check for o in detected for check in o.checks)
            print(
                f"{scenario.name:<20} {_percent(len(detected), args.broken_seeds):>28} {np.median(requests):>16.0f} "
                f"{np.percentile(requests, 90):>8.0f}  {dict(where)} {dict(which)}"
            )
    print(f"\n{time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
