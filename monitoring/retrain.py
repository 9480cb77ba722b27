"""When to retrain, and on what: sustained drift or a measured performance drop, enough new labelled fraud, and a
cooldown; then the window's labelled rows, split forward in time, for the training pipeline.

Retraining on every alarm would churn models on noise, and retraining without new fraud labels cannot learn
the new pattern. The trigger therefore needs all of:

1. a reason: drift in `RetrainPolicy.sustained_windows` windows in a row, or a measured performance drop
   (recall's upper 95 % bound below `RetrainPolicy.min_recall_ratio` × the version's validation recall);
2. at least `RetrainPolicy.min_new_frauds` labelled frauds since the last trigger (the material to learn from);
3. the cooldown since the last trigger has passed.

`check` applies the policy to one judged window and, when it fires, hands the window's training data
(`training_window`) to a `Submit` callable, keeping the trigger with its reason, evidence and the submission's
outcome in the state file. The callable comes from the caller (`pipelines.retraining` builds the one that runs
or submits the training pipeline): the monitoring package never imports the pipeline (import-linter).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fraud.errors import DataValidationError, FraudError
from fraud.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

    from monitoring.drift import DriftResult
    from monitoring.reference import Reference
    from monitoring.window import Window


@dataclass(frozen=True)
class RetrainPolicy:
    sustained_windows: int = 3
    min_new_frauds: int = 50
    cooldown: timedelta = timedelta(hours=24)
    min_recall_ratio: float = 0.8

    @classmethod
    def from_settings(cls, settings: Settings) -> RetrainPolicy:
        """The policy the monitor runs: drift as long as the drift alert needs, the configured frauds and cooldown."""
        return cls(
            sustained_windows=settings.monitor_alert_windows,
            min_new_frauds=settings.monitor_retrain_min_frauds,
            cooldown=timedelta(hours=settings.monitor_retrain_cooldown_hours),
        )


@dataclass(frozen=True)
class Trigger:
    """One firing: when, why (the reason a person reads), on what evidence, and what the submission gave.

    ``result`` is filled once the training run was submitted (`check`): the new version and its aliases
    (local), the KFP run id (cluster), or the error that stopped it. A trigger is recorded before the submission
    starts, so a failed or interrupted run still starts the cooldown (no retraining storm on a broken pipeline).
    """

    at: str
    reason: str
    drifted: list[str]
    new_frauds: int
    window: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RetrainState:
    drift_windows: int = 0
    new_frauds: int = 0
    last_trigger_at: str | None = None
    triggers: list[Trigger] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RetrainState:
        data = json.loads(text)
        data["triggers"] = [Trigger(**t) for t in data.get("triggers", [])]
        return cls(**data)


def performance_dropped(recall_high: float | None, reference_recall: float | None, policy: RetrainPolicy) -> bool:
    """True when even the optimistic end of measured recall is well below the version's validation recall."""
    if recall_high is None or reference_recall is None or reference_recall <= 0:
        return False
    return recall_high < policy.min_recall_ratio * reference_recall


def recall_drop(frame: pd.DataFrame, reference: Reference, policy: RetrainPolicy) -> dict[str, Any]:
    """Measured recall at the version's block threshold on the window's labelled rows against the same recall on
    the version's held-out reference rows: ``dropped`` when even the upper 95 % bound of the window's is below
    `RetrainPolicy.min_recall_ratio` of the reference's (`performance_dropped`), so a few unlucky frauds never fire
    it. Rows still waiting for their label do not count."""
    from monitoring.performance import clopper_pearson

    block = reference.thresholds.block
    labelled = frame.loc[frame["isFraud"].notna()] if "isFraud" in frame.columns else frame.iloc[0:0]
    frauds = labelled.loc[labelled["isFraud"].astype(int) == 1, "score"].to_numpy(dtype=np.float64)
    window = clopper_pearson(int(np.count_nonzero(frauds >= block)), int(frauds.size))
    held_out = reference.scores
    ref_frauds = held_out.loc[held_out["isFraud"].astype(int) == 1, "score"].to_numpy(dtype=np.float64)
    reference_recall = float(np.mean(ref_frauds >= block)) if ref_frauds.size else None
    return {
        "dropped": performance_dropped(window.high, reference_recall, policy),
        "recall": window.value,
        "recall_high": window.high,
        "frauds": int(frauds.size),
        "reference_recall": reference_recall,
    }


def observe(
    state: RetrainState,
    policy: RetrainPolicy,
    *,
    now: datetime,
    drift: bool,
    drifted: list[str],
    new_frauds: int,
    performance_drop: bool = False,
    window: dict[str, Any] | None = None,
) -> tuple[RetrainState, Trigger | None]:
    """The state after one more window, and the trigger if this window fires one.

    Args:
        drift: the window's drift verdict.
        drifted: the drifted columns (recorded in the reason).
        new_frauds: labelled frauds that matured since the previous window.
        performance_drop: measured performance fell (see `performance_dropped`).
    """
    drift_windows = state.drift_windows + 1 if drift else 0
    frauds = state.new_frauds + max(new_frauds, 0)
    updated = replace(state, drift_windows=drift_windows, new_frauds=frauds)
    reasons = []
    if drift_windows >= policy.sustained_windows:
        reasons.append(f"drift in {drift_windows} consecutive windows ({', '.join(drifted) or 'no column named'})")
    if performance_drop:
        reasons.append("measured recall dropped below the policy's share of the validation recall")
    if not reasons or frauds < policy.min_new_frauds:
        return updated, None
    last = state.last_trigger_at
    if last is not None and now - datetime.fromisoformat(last) < policy.cooldown:
        return updated, None
    trigger = Trigger(
        at=now.isoformat(timespec="seconds"),
        reason="; ".join(reasons) + f"; {frauds} new labelled frauds",
        drifted=list(drifted),
        new_frauds=frauds,
        window=dict(window or {}),
    )
    fired = RetrainState(drift_windows=0, new_frauds=0, last_trigger_at=trigger.at, triggers=[*state.triggers, trigger])
    return fired, trigger


def record_result(state: RetrainState, result: dict[str, Any]) -> RetrainState:
    """The state with the submission's outcome attached to the latest trigger."""
    if not state.triggers:
        raise ValueError("no trigger to attach a submission result to")
    last = replace(state.triggers[-1], result=dict(result))
    return replace(state, triggers=[*state.triggers[:-1], last])


def load(path: Path) -> RetrainState:
    return RetrainState.from_json(path.read_text()) if path.is_file() else RetrainState()


def save(path: Path, state: RetrainState) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_suffix(".tmp")
    temp.write_text(state.to_json())
    temp.replace(path)


def forward_split(steps: np.ndarray, is_fraud: np.ndarray) -> tuple[int, int]:
    """Train/validation/test boundaries ``(train_end_step, valid_end_step)`` for a window, forward in time.

    Near 70 % / 85 % of the rows, as `fraudctl pipeline run` splits a month, but moved earlier where needed so
    that validation and test each hold at least one labelled fraud: the pipeline refuses a block without fraud
    (its threshold and its test metrics would be undefined), and at fraud-scale rates the plain row quantiles of
    a short window often leave one empty (seen: "validation block (steps 324..376) holds no fraud").
    """
    fraud_steps = np.unique(steps[is_fraud.astype(bool)])
    if len(fraud_steps) < 3:
        raise DataValidationError(
            f"the window's labelled frauds fall on {len(fraud_steps)} distinct step(s); training, validation and "
            "test each need fraud from a later step than the one before: wait for more labels or widen the window"
        )
    train_q, valid_q = (int(v) for v in np.quantile(steps, [0.7, 0.85]))
    # validation ends after the second fraud step and before the last (test keeps one); training ends at or after
    # the first fraud step and before the last fraud step validation holds
    valid_end = int(np.clip(valid_q, fraud_steps[1], fraud_steps[-1] - 1))
    last_in_validation = int(fraud_steps[fraud_steps <= valid_end][-1])
    train_end = int(np.clip(train_q, fraud_steps[0], last_in_validation - 1))
    return train_end, valid_end


def training_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The window's labelled rows in the dataset's format, oldest step first, for the training pipeline.

    Post-transaction balances are not logged (the model never reads them); they are filled with the
    balance the transaction implies, and ``isFlaggedFraud`` with 0, so the file passes the dataset's contract.

    Raises:
        DataValidationError: the window has no labelled row.
    """
    from fraud.schema import COLUMNS

    labelled = frame.loc[frame["isFraud"].notna()].copy() if "isFraud" in frame.columns else frame.iloc[:0]
    if labelled.empty:
        raise DataValidationError(
            "the window has no labelled rows to retrain on; wait for labels (fraudctl monitor labels)"
        )
    amount = labelled["amount"].to_numpy(dtype=np.float64)
    incoming = (labelled["type"] == "CASH_IN").to_numpy()
    orig = labelled["oldbalanceOrg"].to_numpy(dtype=np.float64)
    dest = labelled["oldbalanceDest"].to_numpy(dtype=np.float64)
    if "newbalanceOrig" not in labelled.columns or labelled["newbalanceOrig"].isna().any():
        labelled["newbalanceOrig"] = np.where(incoming, orig + amount, np.maximum(orig - amount, 0.0))
    if "newbalanceDest" not in labelled.columns or labelled["newbalanceDest"].isna().any():
        labelled["newbalanceDest"] = np.where(incoming, np.maximum(dest - amount, 0.0), dest + amount)
    labelled["isFraud"] = labelled["isFraud"].astype(np.int8)
    labelled["isFlaggedFraud"] = np.int8(0)
    labelled["step"] = labelled["step"].astype(np.int32)
    table: pd.DataFrame = labelled[list(COLUMNS)].sort_values("step", kind="stable").reset_index(drop=True)
    return table


@dataclass(frozen=True)
class TrainingWindow:
    """What a retraining run learns from: the window's labelled rows and their forward split (`forward_split`)."""

    table: pd.DataFrame
    train_end_step: int
    valid_end_step: int

    @property
    def frauds(self) -> int:
        return int(self.table["isFraud"].sum())


def training_window(frame: pd.DataFrame) -> TrainingWindow:
    """The labelled rows of a judged window, split forward in time with fraud in every block.

    Raises:
        DataValidationError: no labelled rows, or frauds on fewer than three steps (the message says which).
    """
    table = training_table(frame)
    train_end, valid_end = forward_split(table["step"].to_numpy(), table["isFraud"].to_numpy())
    return TrainingWindow(table, train_end, valid_end)


Submit = Callable[[TrainingWindow, str], dict[str, Any]]
"""Starts training on a window for a reason (`pipelines.retraining.submitter`) and returns its outcome as plain
JSON values: the new version and the rollout command (local), or the KFP run id (cluster). Raises `FraudError`
when the run cannot start or fails."""


def new_frauds(frame: pd.DataFrame) -> int:
    """Labelled frauds in a window (its matured labels; rows without a label count as not known)."""
    if "isFraud" not in frame.columns:
        return 0
    return int(np.nansum(frame["isFraud"].to_numpy(dtype=np.float64) > 0))


def check(
    path: Path,
    policy: RetrainPolicy,
    result: DriftResult,
    window: Window,
    now: datetime,
    submit: Submit,
    reference: Reference | None = None,
) -> dict[str, Any]:
    """Feed one judged window to the policy kept in `path`; when it fires, submit training on the window.

    With the version's ``reference``, the window's measured recall (`recall_drop`) is a reason too.

    The trigger is saved before anything is submitted, so a run that fails (or a window that cannot be split)
    still starts the cooldown, and its outcome is attached to it afterwards: the submission's result, or the
    error. Returns what the monitor prints: ``triggered``, and the reason and outcome when it fired.
    """
    recall = recall_drop(window.frame, reference, policy) if reference is not None else None
    state, trigger = observe(
        load(path),
        policy,
        now=now,
        drift=result.drift,
        drifted=[c.name for c in result.drifted],
        new_frauds=new_frauds(window.frame),
        performance_drop=bool(recall and recall["dropped"]),
        window=window.info(),
    )
    save(path, state)
    if trigger is None:
        return {
            "triggered": False,
            "drift_windows": state.drift_windows,
            "new_frauds": state.new_frauds,
            "recall": recall,
        }
    try:
        submitted = submit(training_window(window.frame), trigger.reason)
    except FraudError as exc:
        save(path, record_result(state, {"error": str(exc)}))
        return {"triggered": True, "reason": trigger.reason, "error": str(exc)}
    save(path, record_result(state, submitted))
    return {"triggered": True, "reason": trigger.reason, **submitted}
