"""The rollout state machine driven by synthetic windows: phases, policy, manual commands, persistence."""

from __future__ import annotations

import numpy as np
import pytest

from serving.canary.analysis import AnalysisConfig
from serving.canary.evidence import ArmLabels, ArmSample, LabelSample, Window
from serving.canary.rollout import (
    Action,
    ActionKind,
    Phase,
    RolloutSpec,
    RolloutState,
    RolloutTransitionError,
    applied,
    manual,
    reconcile,
    start,
)
from serving.canary.simulation import SCENARIOS, Traffic, TrafficSimulator, simulate_rollout

T0 = 1_700_000_000.0
SPEC = RolloutSpec(champion_version="3", challenger_version="4", min_requests=2000, min_seconds=30.0)
COMMON_BLOCKS = Traffic(block_rate=0.003)
"""0.3 % blocks: shadow gains its power on the block check within ~3,000 requests (at 0.04 %, ~20,000), for
tests about the steps rather than about how long shadow lasts."""


def _drive(
    state: RolloutState, simulator: TrafficSimulator, windows: int, now: float, requests: int = 1000
) -> tuple[RolloutState, float, list[Action]]:
    """Feed windows following the state's routing, applying every action at once."""
    actions = []
    for _ in range(windows):
        if state.terminal or state.phase is Phase.PAUSED:
            break
        window = simulator.window(now, 10.0, requests, state.weight, shadow=state.shadow)
        now += 10.0
        state, action = reconcile(state, window, now)
        if action.kind is not ActionKind.NONE:
            actions.append(action)
            state = applied(state)
    return state, now, actions


def test_start_begins_in_shadow_or_at_the_first_step() -> None:
    state, action = start(SPEC, T0)
    assert (state.phase, state.weight, action.kind, action.shadow) == (Phase.SHADOW, 0, ActionKind.SET_WEIGHT, True)
    assert state.pending_action == action
    no_shadow, action = start(RolloutSpec("3", "4", shadow=False), T0)
    assert (no_shadow.phase, no_shadow.weight, action.weight, action.shadow) == (Phase.PROGRESSING, 5, 5, False)


def test_an_equal_challenger_goes_through_every_step_and_is_promoted() -> None:
    state, _ = start(SPEC, T0)
    state, _, actions = _drive(applied(state), TrafficSimulator(*SCENARIOS["equal_quality"], seed=1), 40, T0)
    assert state.phase is Phase.PROMOTED
    assert [(a.kind, a.weight) for a in actions] == [
        (ActionKind.SET_WEIGHT, 5),
        (ActionKind.SET_WEIGHT, 25),
        (ActionKind.SET_WEIGHT, 50),
        (ActionKind.PROMOTE, 100),
    ]
    assert [(t.to_phase, t.weight) for t in state.history] == [
        (Phase.SHADOW, 0),
        (Phase.PROGRESSING, 5),
        (Phase.PROGRESSING, 25),
        (Phase.PROGRESSING, 50),
        (Phase.PROMOTED, 100),
    ]
    assert all(t.checks for t in state.history[1:]), "each transition keeps the checks it was based on"
    assert state.summary()["checks"]["blocks"] == "pass"


def test_a_broken_block_threshold_is_rolled_back_in_shadow() -> None:
    spec = RolloutSpec("3", "4", min_requests=50_000, min_seconds=30.0)
    state, _ = start(spec, T0)
    state, _, actions = _drive(applied(state), TrafficSimulator(*SCENARIOS["blocks_5x"], seed=2), 60, T0)
    assert state.phase is Phase.ROLLED_BACK
    assert state.history[-1].from_phase is Phase.SHADOW
    assert actions[-1].kind is ActionKind.ROLLBACK and actions[-1].weight == 0
    assert state.reason is not None and state.reason.startswith("blocks failed")
    assert state.checks["blocks"]["status"] == "fail"


def test_added_latency_is_rolled_back_at_the_first_step_without_shadow() -> None:
    spec = RolloutSpec("3", "4", shadow=False, min_requests=2000, min_seconds=30.0)
    result = simulate_rollout(spec, TrafficSimulator(*SCENARIOS["latency_up"], seed=3))
    assert result.state.phase is Phase.ROLLED_BACK
    assert [t.weight for t in result.state.history] == [5, 0]
    assert result.state.checks["latency"]["status"] == "fail"


def test_higher_scores_are_rolled_back_before_promotion_without_shadow() -> None:
    """logit +0.5 on 5 % of traffic is a small signal; the split evidence adds up over the steps."""
    spec = RolloutSpec("3", "4", shadow=False, min_requests=2000, min_seconds=30.0)
    result = simulate_rollout(spec, TrafficSimulator(*SCENARIOS["scores_up"], seed=3))
    assert result.state.phase is Phase.ROLLED_BACK
    assert result.state.checks["scores"]["status"] == "fail"


def test_a_step_waits_for_both_its_requests_and_its_time() -> None:
    simulator = TrafficSimulator(*SCENARIOS["same_model"], COMMON_BLOCKS, seed=4)
    slow = RolloutSpec("3", "4", min_requests=10_000, min_seconds=10.0)
    state, _ = start(slow, T0)
    state, _, _ = _drive(applied(state), simulator, 9, T0)
    assert state.phase is Phase.SHADOW and state.step_requests == 9000
    state, _, _ = _drive(state, simulator, 1, T0 + 90)
    assert state.phase is Phase.PROGRESSING
    long = RolloutSpec("3", "4", min_requests=1000, min_seconds=100.0)
    state, _ = start(long, T0)
    state, _, _ = _drive(applied(state), simulator, 9, T0)
    assert state.phase is Phase.SHADOW
    state, _, _ = _drive(state, simulator, 1, T0 + 90)
    assert state.phase is Phase.PROGRESSING


def _empty_window(start_time: float, weight: int) -> Window:
    return Window(start_time, start_time + 10.0, ArmSample.empty(), ArmSample.empty(), weight / 100, shadow=weight == 0)


def test_required_checks_without_data_pause_the_rollout_and_resume_continues() -> None:
    spec = RolloutSpec("3", "4", min_requests=0, min_seconds=0.0, max_inconclusive_seconds=60.0)
    state = applied(start(spec, T0)[0])
    now = T0
    for _ in range(6):
        state, action = reconcile(state, _empty_window(now, 0), now + 10)
        now += 10
        assert state.phase is Phase.SHADOW and action.kind is ActionKind.NONE
    state, action = reconcile(state, _empty_window(now, 0), now + 10)
    assert state.phase is Phase.PAUSED and action.kind is ActionKind.NONE
    assert state.reason is not None and "errors" in state.reason
    state, action = manual(state, "resume", now + 20)
    assert (state.phase, action.kind, action.shadow) == (Phase.SHADOW, ActionKind.SET_WEIGHT, True)
    assert manual(applied(state), "resume", now + 21)[1].kind is ActionKind.NONE


def test_a_failed_check_rolls_back_even_while_paused() -> None:
    state = applied(start(SPEC, T0)[0])
    state, _ = manual(state, "pause", T0 + 1)
    assert state.phase is Phase.PAUSED and state.shadow
    state, _, actions = _drive(state, TrafficSimulator(*SCENARIOS["errors_up"], seed=5), 1, T0 + 2)
    assert actions == []
    # _drive stops at paused states; call reconcile directly until the check fails
    simulator = TrafficSimulator(*SCENARIOS["errors_up"], seed=5)
    now, action = T0 + 2, Action(ActionKind.NONE)
    for _ in range(12):
        window = simulator.window(now, 10.0, 1000, 0, shadow=True)
        now += 10.0
        state, action = reconcile(state, window, now)
        if state.phase is not Phase.PAUSED:
            break
    assert state.phase is Phase.ROLLED_BACK and action.kind is ActionKind.ROLLBACK
    assert state.reason is not None and state.reason.startswith("errors failed")


def test_label_gate_never_promotes_without_labels() -> None:
    spec = RolloutSpec("3", "4", label_gate=True, min_requests=1000, min_seconds=0.0, max_inconclusive_seconds=100.0)
    state = applied(start(spec, T0)[0])
    state, _, actions = _drive(state, TrafficSimulator(*SCENARIOS["same_model"], COMMON_BLOCKS, seed=6), 80, T0)
    assert state.phase is Phase.PAUSED
    assert state.weight == 50, "every step passed; only the promotion waits for labels"
    assert state.reason is not None and "labels" in state.reason
    assert all(a.kind is not ActionKind.PROMOTE for a in actions)


def _labelled_window(simulator: TrafficSimulator, now: float, weight: int, rng: np.random.Generator) -> Window:
    window = simulator.window(now, 10.0, 1000, weight, shadow=weight == 0)

    def labels() -> ArmLabels:
        y = (rng.random(300) < 0.3).astype(np.int8)
        return ArmLabels(y_true=y, scores=np.where(y == 1, 0.99, 0.001))

    return Window(
        window.start,
        window.end,
        window.champion,
        window.challenger,
        window.expected_challenger_share,
        window.shadow,
        window.paired_scores,
        window.paired_decisions,
        LabelSample(champion=labels(), challenger=labels()),
    )


def test_label_gate_promotes_once_labels_show_no_recall_drop() -> None:
    spec = RolloutSpec("3", "4", label_gate=True, min_requests=1000, min_seconds=0.0, max_inconclusive_seconds=1e6)
    simulator, rng = TrafficSimulator(*SCENARIOS["same_model"], seed=7), np.random.default_rng(7)
    state, now = applied(start(spec, T0)[0]), T0
    for _ in range(60):
        if state.terminal:
            break
        state, _ = reconcile(state, _labelled_window(simulator, now, state.weight, rng), now + 10)
        state, now = applied(state), now + 10
    assert state.phase is Phase.PROMOTED
    assert state.checks["labels"]["status"] == "pass"


def test_manual_commands_are_idempotent_and_refuse_contradictions() -> None:
    state = applied(start(SPEC, T0)[0])
    promoted, action = manual(state, "promote", T0 + 1)
    assert (promoted.phase, action.kind, action.weight) == (Phase.PROMOTED, ActionKind.PROMOTE, 100)
    assert promoted.reason is not None and "by hand" in promoted.reason
    again, action = manual(applied(promoted), "promote", T0 + 2)
    assert action.kind is ActionKind.NONE and again.history == applied(promoted).history
    with pytest.raises(RolloutTransitionError, match="already promoted"):
        manual(promoted, "rollback", T0 + 3)
    with pytest.raises(RolloutTransitionError, match="nothing to pause"):
        manual(promoted, "pause", T0 + 3)

    rolled, action = manual(state, "rollback", T0 + 1)
    assert (rolled.phase, rolled.weight, action.kind) == (Phase.ROLLED_BACK, 0, ActionKind.ROLLBACK)
    assert manual(applied(rolled), "rollback", T0 + 2)[1].kind is ActionKind.NONE
    with pytest.raises(RolloutTransitionError, match="start a new rollout"):
        manual(rolled, "promote", T0 + 3)

    paused, action = manual(state, "pause", T0 + 1)
    assert (paused.phase, action.kind) == (Phase.PAUSED, ActionKind.NONE)
    assert manual(paused, "pause", T0 + 2) == (paused, action)
    with pytest.raises(RolloutTransitionError, match="unknown command"):
        manual(state, "restart", T0)  # type: ignore[arg-type]


def test_terminal_rollouts_ignore_windows() -> None:
    promoted = applied(manual(applied(start(SPEC, T0)[0]), "promote", T0 + 1)[0])
    window = _empty_window(T0 + 2, 0)
    assert reconcile(promoted, window, T0 + 12) == (promoted, Action(ActionKind.NONE))


def test_a_pending_action_is_returned_until_it_is_applied() -> None:
    state, action = start(SPEC, T0)
    again, repeated = reconcile(state, _empty_window(T0, 0), T0 + 10)
    assert again is state and repeated == action
    assert applied(state).pending_action is None


def test_windows_from_before_the_step_are_ignored_and_mismatched_ones_refused() -> None:
    state = applied(start(RolloutSpec("3", "4", shadow=False), T0)[0])
    stale = _empty_window(T0 - 5, 5)
    assert reconcile(state, stale, T0 + 10) == (state, Action(ActionKind.NONE))
    with pytest.raises(ValueError, match="shadow"):
        reconcile(state, _empty_window(T0, 0), T0 + 10)
    with pytest.raises(ValueError, match="weight 5"):
        reconcile(state, _empty_window(T0, 25), T0 + 10)


def test_state_round_trips_through_json_mid_rollout_and_continues_identically() -> None:
    simulator = TrafficSimulator(*SCENARIOS["equal_quality"], COMMON_BLOCKS, seed=8)
    state = applied(start(SPEC, T0)[0])
    state, now, _ = _drive(state, simulator, 8, T0)
    assert state.phase is Phase.PROGRESSING
    text = state.to_json()
    restored = RolloutState.from_json(text)
    assert restored.to_json() == text
    window = simulator.window(now, 10.0, 1000, state.weight, shadow=state.shadow)
    left, right = reconcile(state, window, now + 10), reconcile(restored, window, now + 10)
    assert left[0].to_json() == right[0].to_json() and left[1] == right[1]
    with pytest.raises(ValueError, match="version"):
        RolloutState.from_json(text.replace('"version": 1', '"version": 99'))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": ()}, "at least one"),
        ({"steps": (5, 5, 100)}, "increase"),
        ({"steps": (0, 100)}, "between 1 and 100"),
        ({"steps": (100,), "shadow": False}, "without shadow"),
    ],
)
def test_spec_refuses_bad_steps(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RolloutSpec("3", "4", **kwargs)  # type: ignore[arg-type]


def test_steps_below_100_promote_after_the_last_step_and_100_alone_promotes_after_shadow() -> None:
    simulator = TrafficSimulator(*SCENARIOS["same_model"], seed=9)
    short = simulate_rollout(RolloutSpec("3", "4", steps=(10,), min_requests=1000, min_seconds=0.0), simulator)
    assert [t.weight for t in short.state.history] == [0, 10, 100]
    direct = simulate_rollout(RolloutSpec("3", "4", steps=(100,), min_requests=1000, min_seconds=0.0), simulator)
    assert [t.weight for t in direct.state.history] == [0, 100]


def test_shadow_operational_off_ignores_shadow_latency_and_judges_it_in_the_steps() -> None:
    spec = RolloutSpec("3", "4", min_requests=2000, min_seconds=30.0, analysis=AnalysisConfig(shadow_operational=False))
    result = simulate_rollout(spec, TrafficSimulator(*SCENARIOS["latency_up"], seed=10))
    assert result.state.phase is Phase.ROLLED_BACK
    assert [t.weight for t in result.state.history] == [0, 5, 0]
    assert result.state.checks["latency"]["status"] == "fail"


def test_shadow_lasts_until_the_block_check_could_catch_the_configured_ratio() -> None:
    """At 0.04 % blocks, 1,000 requests hold ~0.4 champion blocks: shadow goes on past ``min_requests`` until the
    paired evidence could have caught ``shadow_detectable_ratio`` x the champion's block odds, then moves on."""
    spec = RolloutSpec("3", "4", min_requests=1000, min_seconds=0.0, max_inconclusive_seconds=1e6)
    simulator = TrafficSimulator(*SCENARIOS["same_model"], seed=12)
    state, now = applied(start(spec, T0)[0]), T0
    state, now, _ = _drive(state, simulator, 2, now)
    assert state.phase is Phase.SHADOW and state.step_requests == 2000
    blocks = state.checks["blocks"]
    assert blocks["status"] == "inconclusive" and "shadow_detectable_ratio" in blocks["reason"], blocks["reason"]
    state, now, actions = _drive(state, simulator, 60, now)
    assert actions and actions[0].weight == 5, "shadow never ended"
    shadow_end = next(t for t in state.history if t.from_phase is Phase.SHADOW)
    blocks = shadow_end.checks["blocks"]
    assert blocks["status"] == "pass"
    assert blocks["details"]["detectable_ratio"] <= spec.analysis.shadow_detectable_ratio
    assert blocks["sample_size"]["challenger"] > 10_000, "at 0.04 % blocks the power takes ~20,000 pairs"
