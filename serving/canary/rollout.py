"""The rollout state machine: shadow -> weighted steps -> promoted, or rolled back, or paused; pure and JSON-able.

One machine for both runtimes. The local splitter and the cluster controller both call `start`, then
`reconcile` with every analysis window, and apply the `Action` each call returns (routing and registry); `manual`
serves ``fraudctl canary promote | rollback`` and pausing. Nothing here does I/O or reads a clock: time comes in
as ``now`` (Unix seconds), so a replayed sequence of windows gives the same decisions.

Crash safety is the runtime's protocol on top of this module: every call that returns an action other than
``none`` also stores it in ``state.pending_action``; the runtime persists that state, applies the action (each
apply is idempotent), then persists `applied(state)`. A controller killed in between finds the pending action on
restart and applies it again; `reconcile` refuses to move on while an action is pending.

Policy (what a step needs to complete, and why):
- A step lasts until it has seen ``min_requests`` requests *and* ``min_seconds``, and every required check has
  enough data to speak (is not inconclusive). Required: errors, latency, blocks, reviews, scores; plus
  sample_ratio in weighted steps; plus, before promotion only, labels when ``label_gate`` is set (so a label
  gate never promotes on missing labels). Latency is not required in shadow unless ``analysis.shadow_latency``
  is on (shadow calls are not served like clients' requests); with ``analysis.shadow_operational`` off, errors
  are not either. A check needs ``analysis.min_samples`` challenger observations to speak, so at 5 % a step
  lasts at least ~20 x min_samples requests whatever ``min_requests`` says; latency also needs the warm-up
  (``analysis.warmup_seconds`` from the start) and a few counted windows behind it.
- Any check that fails rolls back at once, at any time, in any phase (paused included): only evidence of harm
  fails a check, and the tests are always valid, so looking at every window costs no false rollbacks.
- Required checks inconclusive for longer than ``max_inconclusive_seconds`` pause the rollout (traffic stays as
  it is, evidence keeps accruing, a failed check still rolls back); ``resume`` continues it.
- The weight 100 is the promotion: when the step before it completes, the challenger is promoted (there is no
  champion traffic left to compare with at 100 %, so a step there would judge nothing). Steps that stop below
  100 promote after their last step.
- Evidence accumulates over the whole rollout (shadow and every step), with the error budget spent once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Final, Literal

from fraud.errors import FraudError
from serving.canary.analysis import AnalysisConfig, AnalysisState, CheckStatus, analyse
from serving.canary.evidence import Window

STATE_VERSION: Final = 1
"""Bumped when the JSON layout of `RolloutState` changes incompatibly."""

DEFAULT_STEPS: Final[tuple[int, ...]] = (5, 25, 50, 100)

REQUIRED_CHECKS: Final[tuple[str, ...]] = ("errors", "latency", "blocks", "reviews", "scores")
"""Checks that must have enough data before a step completes (sample_ratio joins in weighted steps)."""


class RolloutTransitionError(FraudError):
    """A manual command that makes no sense in the rollout's phase (for example, promoting a rolled-back one)."""

    exit_code = 2
    http_status = 409


class Phase(StrEnum):
    SHADOW = "shadow"
    PROGRESSING = "progressing"
    PAUSED = "paused"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"


TERMINAL: Final[frozenset[Phase]] = frozenset({Phase.PROMOTED, Phase.ROLLED_BACK})


class ActionKind(StrEnum):
    SET_WEIGHT = "set_weight"
    PROMOTE = "promote"
    ROLLBACK = "rollback"
    NONE = "none"


@dataclass(frozen=True)
class Action:
    """What the runtime must make true now. Applying the same action twice has the effect of applying it once.

    Args:
        kind: set_weight (route ``weight`` % to the challenger; ``shadow``: mirror every request to it instead),
            promote (registry: champion -> challenger's version, previous champion -> alias ``previous``; routing:
            everything to the new champion), rollback (registry: champion unchanged, challenger tagged with
            ``reason``; routing: everything to the champion), none.
        weight: the challenger's share of requests in percent once applied.
        shadow: whether the challenger scores a mirrored copy of every request.
        reason: why, in words, for the registry tag, the report and the logs.
    """

    kind: ActionKind
    weight: int = 0
    shadow: bool = False
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": str(self.kind), "weight": self.weight, "shadow": self.shadow, "reason": self.reason}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Action:
        return cls(
            kind=ActionKind(data["kind"]),
            weight=int(data["weight"]),
            shadow=bool(data["shadow"]),
            reason=str(data["reason"]),
        )


NO_ACTION: Final = Action(ActionKind.NONE)


@dataclass(frozen=True)
class RolloutSpec:
    """What a rollout should do; fixed when it starts and stored in its state.

    Args:
        champion_version: registry version serving now.
        challenger_version: registry version being rolled out.
        steps: challenger weights in percent, strictly increasing, the last one usually 100 (= promotion).
        shadow: begin with a shadow phase (challenger scores a copy of all traffic, answers discarded).
        min_requests: requests a phase or step must see before it can complete.
        min_seconds: time a phase or step must last before it can complete.
        max_inconclusive_seconds: how long required checks may lack data before the rollout pauses.
        label_gate: promotion needs the label check to pass (recall at the alert budget, with labels).
        analysis: tolerances and error budget of the checks.
    """

    champion_version: str
    challenger_version: str
    steps: tuple[int, ...] = DEFAULT_STEPS
    shadow: bool = True
    min_requests: int = 2000
    min_seconds: float = 60.0
    max_inconclusive_seconds: float = 600.0
    label_gate: bool = False
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)

    def __post_init__(self) -> None:
        if not self.steps:
            raise ValueError("steps: at least one weight is needed, e.g. 5,25,50,100")
        for index, weight in enumerate(self.steps):
            if not 1 <= weight <= 100:
                raise ValueError(f"steps[{index}]: weight {weight} must lie between 1 and 100 percent")
            if index and weight <= self.steps[index - 1]:
                raise ValueError(f"steps[{index}]: weights must increase, {weight} follows {self.steps[index - 1]}")
        if not self.shadow and self.steps[0] == 100:
            raise ValueError("steps: a rollout without shadow needs a step below 100 % to gather any evidence")
        if self.min_requests < 0 or self.min_seconds < 0 or self.max_inconclusive_seconds <= 0:
            raise ValueError("min_requests and min_seconds must be >= 0 and max_inconclusive_seconds > 0")

    @property
    def weighted_steps(self) -> tuple[int, ...]:
        """The steps actually run with traffic split (100 % is the promotion itself)."""
        return tuple(weight for weight in self.steps if weight < 100)

    def to_dict(self) -> dict[str, Any]:
        return {
            "champion_version": self.champion_version,
            "challenger_version": self.challenger_version,
            "steps": list(self.steps),
            "shadow": self.shadow,
            "min_requests": self.min_requests,
            "min_seconds": self.min_seconds,
            "max_inconclusive_seconds": self.max_inconclusive_seconds,
            "label_gate": self.label_gate,
            "analysis": self.analysis.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RolloutSpec:
        return cls(
            champion_version=str(data["champion_version"]),
            challenger_version=str(data["challenger_version"]),
            steps=tuple(int(w) for w in data["steps"]),
            shadow=bool(data["shadow"]),
            min_requests=int(data["min_requests"]),
            min_seconds=float(data["min_seconds"]),
            max_inconclusive_seconds=float(data["max_inconclusive_seconds"]),
            label_gate=bool(data["label_gate"]),
            analysis=AnalysisConfig.from_dict(data["analysis"]),
        )


@dataclass(frozen=True)
class Transition:
    """One entry of the rollout's history: the report's timeline is made of these."""

    time: float
    from_phase: Phase | None
    to_phase: Phase
    weight: int
    reason: str
    checks: dict[str, dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "from": None if self.from_phase is None else str(self.from_phase),
            "to": str(self.to_phase),
            "weight": self.weight,
            "reason": self.reason,
            "checks": self.checks,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Transition:
        return cls(
            time=float(data["time"]),
            from_phase=None if data["from"] is None else Phase(data["from"]),
            to_phase=Phase(data["to"]),
            weight=int(data["weight"]),
            reason=str(data["reason"]),
            checks=dict(data["checks"]),
        )


@dataclass(frozen=True)
class RolloutState:
    """Where a rollout is, everything it has learnt, and how it got there. Persist it after every call.

    Args:
        spec: the rollout's settings.
        phase: current phase.
        weight: percent of requests routed to the challenger now (0 in shadow and after rollback).
        step_index: index into ``spec.steps`` of the current weighted step; -1 in shadow.
        started_at: when the rollout started.
        step_started_at: when the current phase or step started (windows starting earlier are ignored).
        updated_at: time of the last call that changed the state.
        step_requests: requests seen in the current phase or step.
        windows: windows folded into the analysis.
        reason: why the rollout stopped or paused (None while it runs normally).
        checks: each check's last verdict (`CheckResult.to_dict`).
        history: every transition, oldest first.
        analysis: the sequential tests' accumulated evidence.
        pending_action: an action returned but not yet confirmed applied (see the module docstring).
        paused_from: the phase a paused rollout resumes to.
        inconclusive_since: since when some required check has lacked data in this step.
    """

    spec: RolloutSpec
    phase: Phase
    weight: int
    step_index: int
    started_at: float
    step_started_at: float
    updated_at: float
    step_requests: int = 0
    windows: int = 0
    reason: str | None = None
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    history: tuple[Transition, ...] = ()
    analysis: AnalysisState = field(default_factory=AnalysisState)
    pending_action: Action | None = None
    paused_from: Phase | None = None
    inconclusive_since: float | None = None

    @property
    def terminal(self) -> bool:
        return self.phase in TERMINAL

    @property
    def settled(self) -> bool:
        """Terminal *and* its last action applied: registry and routing now say what the phase says.

        A terminal state is persisted before its promotion or rollback is applied (crash safety), so whoever
        reports an outcome to a person or checks the registry waits for this, not for `terminal`.
        """
        return self.terminal and self.pending_action is None

    @property
    def shadow(self) -> bool:
        """Whether the challenger now scores mirrored traffic (the phase, or the phase a pause came from)."""
        return (self.paused_from if self.phase is Phase.PAUSED else self.phase) is Phase.SHADOW

    def summary(self) -> dict[str, Any]:
        """The fields `fraudctl canary status --json` shows (the runtime adds ``endpoint``)."""
        return {
            "phase": str(self.phase),
            "weight": self.weight,
            "champion_version": self.spec.champion_version,
            "challenger_version": self.spec.challenger_version,
            "reason": self.reason,
            "checks": {name: check["status"] for name, check in self.checks.items()},
            "step": None if self.step_index < 0 else self.step_index,
            "steps": list(self.spec.steps),
            "started_at": self.started_at,
            "updated_at": self.updated_at,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "spec": self.spec.to_dict(),
            "phase": str(self.phase),
            "weight": self.weight,
            "step_index": self.step_index,
            "started_at": self.started_at,
            "step_started_at": self.step_started_at,
            "updated_at": self.updated_at,
            "step_requests": self.step_requests,
            "windows": self.windows,
            "reason": self.reason,
            "checks": self.checks,
            "history": [transition.to_dict() for transition in self.history],
            "analysis": self.analysis.to_dict(),
            "pending_action": None if self.pending_action is None else self.pending_action.to_dict(),
            "paused_from": None if self.paused_from is None else str(self.paused_from),
            "inconclusive_since": self.inconclusive_since,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, allow_nan=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RolloutState:
        version = data.get("version")
        if version != STATE_VERSION:
            raise ValueError(f"rollout state version {version!r} is not {STATE_VERSION}: written by another release")
        pending = data["pending_action"]
        return cls(
            spec=RolloutSpec.from_dict(data["spec"]),
            phase=Phase(data["phase"]),
            weight=int(data["weight"]),
            step_index=int(data["step_index"]),
            started_at=float(data["started_at"]),
            step_started_at=float(data["step_started_at"]),
            updated_at=float(data["updated_at"]),
            step_requests=int(data["step_requests"]),
            windows=int(data["windows"]),
            reason=data["reason"],
            checks=dict(data["checks"]),
            history=tuple(Transition.from_dict(item) for item in data["history"]),
            analysis=AnalysisState.from_dict(data["analysis"]),
            pending_action=None if pending is None else Action.from_dict(pending),
            paused_from=None if data["paused_from"] is None else Phase(data["paused_from"]),
            inconclusive_since=data["inconclusive_since"],
        )

    @classmethod
    def from_json(cls, text: str) -> RolloutState:
        return cls.from_dict(json.loads(text))


def _transition(
    state: RolloutState,
    now: float,
    to: Phase,
    weight: int,
    why: str,
    action: Action,
    *,
    stop_reason: str | None,
    **changes: Any,
) -> tuple[RolloutState, Action]:
    """Move to a phase or weight, record it in the history and mark the action pending.

    `why` goes into the history; `stop_reason` becomes the state's ``reason`` (None while running normally).
    """
    entry = Transition(time=now, from_phase=state.phase, to_phase=to, weight=weight, reason=why, checks=state.checks)
    new = replace(
        state,
        phase=to,
        weight=weight,
        updated_at=now,
        reason=stop_reason,
        history=(*state.history, entry),
        pending_action=None if action.kind is ActionKind.NONE else action,
        **changes,
    )
    return new, action


def start(spec: RolloutSpec, now: float) -> tuple[RolloutState, Action]:
    """Begin a rollout: shadow if the spec asks for it, else the first weighted step."""
    if spec.shadow:
        phase, weight, step_index = Phase.SHADOW, 0, -1
        action = Action(ActionKind.SET_WEIGHT, 0, shadow=True, reason="shadow: challenger scores a copy of traffic")
    else:
        phase, weight, step_index = Phase.PROGRESSING, spec.steps[0], 0
        action = Action(ActionKind.SET_WEIGHT, weight, reason=f"step 1: {weight} % of requests to the challenger")
    entry = Transition(time=now, from_phase=None, to_phase=phase, weight=weight, reason=action.reason, checks={})
    state = RolloutState(
        spec=spec,
        phase=phase,
        weight=weight,
        step_index=step_index,
        started_at=now,
        step_started_at=now,
        updated_at=now,
        history=(entry,),
        analysis=AnalysisState(started_at=now),  # the challenger serves from now: the latency warm-up counts from here
        pending_action=action,
    )
    return state, action


def applied(state: RolloutState) -> RolloutState:
    """The state once the runtime has applied its pending action (persist this after applying)."""
    return replace(state, pending_action=None)


def _failed_reason(checks: dict[str, dict[str, Any]]) -> str | None:
    failed = [name for name, check in checks.items() if check["status"] == CheckStatus.FAIL]
    if not failed:
        return None
    return "; ".join(f"{name} failed: {checks[name]['reason']}" for name in failed)


def _missing_checks(state: RolloutState, promoting: bool) -> list[str]:
    """Required checks that still lack data (so the step cannot complete)."""
    required = list(REQUIRED_CHECKS)
    if state.shadow and not state.spec.analysis.shadow_operational:
        required = [name for name in required if name not in ("errors", "latency")]
    if state.shadow and not state.spec.analysis.shadow_latency:
        required = [name for name in required if name != "latency"]
    if not state.shadow:
        required.append("sample_ratio")
    if promoting and state.spec.label_gate:
        required.append("labels")
    missing = [name for name in required if state.checks.get(name, {}).get("status") != CheckStatus.PASS]
    return missing


def _next_weight(state: RolloutState) -> int | None:
    """The next step's weight, or None when completing this step means promotion."""
    following = [w for w in state.spec.steps[state.step_index + 1 :] if w < 100]
    return following[0] if following else None


def _check_routing(state: RolloutState, window: Window) -> None:
    if window.shadow != state.shadow:
        raise ValueError(
            f"window shadow={window.shadow} but the rollout is {'in' if state.shadow else 'past'} shadow: "
            "build windows with the routing the rollout state asks for"
        )
    if not window.shadow and abs(window.expected_challenger_share * 100 - state.weight) > 1e-6:
        raise ValueError(
            f"window expected_challenger_share {window.expected_challenger_share} does not match the rollout's "
            f"weight {state.weight} %"
        )


def reconcile(state: RolloutState, window: Window, now: float) -> tuple[RolloutState, Action]:
    """Fold one analysis window in and take at most one step of the rollout.

    Windows that started before the current phase or step began mix two routings and are ignored. Terminal
    rollouts ignore windows (``Action none``). With an action still pending the state is returned unchanged
    with that action, which the runtime must apply (and confirm with `applied`) first.

    Raises:
        ValueError: the window was collected under another routing than the state's (shadow flag or share).
    """
    if state.terminal:
        return state, NO_ACTION
    if state.pending_action is not None:
        return state, state.pending_action
    if window.start < state.step_started_at:
        return state, NO_ACTION
    _check_routing(state, window)

    analysis, results = analyse(state.analysis, window, state.spec.analysis)
    requests = window.champion.requests + (0 if window.shadow else window.challenger.requests)
    checks = {name: result.to_dict() for name, result in results.items()}
    state = replace(
        state,
        analysis=analysis,
        checks=checks,
        step_requests=state.step_requests + requests,
        windows=state.windows + 1,
        updated_at=now,
    )
    failed = _failed_reason(checks)
    if failed is not None:
        action = Action(ActionKind.ROLLBACK, 0, reason=failed)
        return _transition(state, now, Phase.ROLLED_BACK, 0, failed, action, stop_reason=failed)
    if state.phase is Phase.PAUSED:
        return state, NO_ACTION
    return _advance(state, now)


def _advance(state: RolloutState, now: float) -> tuple[RolloutState, Action]:
    """Complete the phase or step when it has its requests, its time and data for every required check."""
    if state.phase is Phase.SHADOW:
        next_weight = state.spec.weighted_steps[0] if state.spec.weighted_steps else None
    else:
        next_weight = _next_weight(state)
    missing = _missing_checks(state, promoting=next_weight is None)
    if missing:
        since = state.inconclusive_since if state.inconclusive_since is not None else now
        state = replace(state, inconclusive_since=since)
        if now - since >= state.spec.max_inconclusive_seconds:
            reason = (
                f"checks {', '.join(missing)} still lack the data to decide after "
                f"{now - since:.0f} s (max_inconclusive_seconds={state.spec.max_inconclusive_seconds:g}); "
                "resume once traffic or labels flow, or decide by hand"
            )
            return _transition(
                state, now, Phase.PAUSED, state.weight, reason, NO_ACTION, stop_reason=reason, paused_from=state.phase
            )
        return state, NO_ACTION
    state = replace(state, inconclusive_since=None)
    step_done = state.step_requests >= state.spec.min_requests and now - state.step_started_at >= state.spec.min_seconds
    if not step_done:
        return state, NO_ACTION
    where = "shadow" if state.phase is Phase.SHADOW else f"step {state.step_index + 1} ({state.weight} %)"
    if next_weight is None:
        reason = f"every check passed through {where}: promoting version {state.spec.challenger_version}"
        action = Action(ActionKind.PROMOTE, 100, reason=reason)
        return _transition(state, now, Phase.PROMOTED, 100, reason, action, stop_reason=reason)
    index = state.spec.steps.index(next_weight)
    reason = f"every check passed through {where}: step {index + 1}, {next_weight} % of requests to the challenger"
    return _transition(
        state,
        now,
        Phase.PROGRESSING,
        next_weight,
        reason,
        Action(ActionKind.SET_WEIGHT, next_weight, reason=reason),
        stop_reason=None,
        step_index=index,
        step_started_at=now,
        step_requests=0,
        inconclusive_since=None,
    )


ManualCommand = Literal["promote", "rollback", "pause", "resume"]


def _promote(state: RolloutState, now: float) -> tuple[RolloutState, Action]:
    if state.phase is Phase.PROMOTED:
        return state, NO_ACTION
    if state.phase is Phase.ROLLED_BACK:
        raise RolloutTransitionError(
            f"version {state.spec.challenger_version} was rolled back ({state.reason}); start a new rollout"
        )
    reason = f"promoted by hand at {state.weight} % (checks: {_statuses(state)})"
    action = Action(ActionKind.PROMOTE, 100, reason=reason)
    return _transition(state, now, Phase.PROMOTED, 100, reason, action, stop_reason=reason)


def _rollback(state: RolloutState, now: float) -> tuple[RolloutState, Action]:
    if state.phase is Phase.ROLLED_BACK:
        return state, NO_ACTION
    if state.phase is Phase.PROMOTED:
        raise RolloutTransitionError(
            f"version {state.spec.challenger_version} is already promoted; "
            f"roll out version {state.spec.champion_version} (alias previous) as a new rollout to go back"
        )
    reason = f"rolled back by hand at {state.weight} %"
    action = Action(ActionKind.ROLLBACK, 0, reason=reason)
    return _transition(state, now, Phase.ROLLED_BACK, 0, reason, action, stop_reason=reason)


def _pause(state: RolloutState, now: float) -> tuple[RolloutState, Action]:
    if state.phase is Phase.PAUSED:
        return state, NO_ACTION
    reason = "paused by hand"
    return _transition(
        state, now, Phase.PAUSED, state.weight, reason, NO_ACTION, stop_reason=reason, paused_from=state.phase
    )


def _resume(state: RolloutState, now: float) -> tuple[RolloutState, Action]:
    if state.phase is not Phase.PAUSED:
        return state, NO_ACTION
    back = state.paused_from or Phase.PROGRESSING
    reason = f"resumed {back} at {state.weight} %"
    action = Action(ActionKind.SET_WEIGHT, state.weight, shadow=back is Phase.SHADOW, reason=reason)
    return _transition(
        state, now, back, state.weight, reason, action, stop_reason=None, paused_from=None, inconclusive_since=None
    )


_COMMANDS: Final = {"promote": _promote, "rollback": _rollback, "pause": _pause, "resume": _resume}


def manual(state: RolloutState, command: ManualCommand, now: float) -> tuple[RolloutState, Action]:
    """A person's decision. Repeating a command that already took effect returns ``Action none``.

    A manual promotion skips the remaining steps and any label gate: the person decides, and the history says so.

    Raises:
        RolloutTransitionError: the command contradicts a finished rollout (promote after rollback, rollback
            after promotion, pause or resume of a finished rollout), or is unknown.
    """
    if command not in _COMMANDS:
        raise RolloutTransitionError(f"unknown command {command!r}: use promote, rollback, pause or resume")
    if command in ("pause", "resume") and state.terminal:
        raise RolloutTransitionError(f"the rollout is {state.phase}: there is nothing to {command}")
    if state.pending_action is not None and command in ("pause", "resume"):
        raise RolloutTransitionError(
            f"action {state.pending_action.kind} is still being applied; {command} once it is done"
        )
    return _COMMANDS[command](state, now)


def _statuses(state: RolloutState) -> str:
    return ", ".join(f"{name} {check['status']}" for name, check in state.checks.items()) or "none yet"
