"""The retraining trigger on drift verdicts of generated windows: exactly one trigger in a sustained-drift run,
none in a healthy run, and the guards (new frauds, cooldown) each able to hold it back; the window's training
data (labelled rows in the dataset's format, split forward with fraud in every block); a trigger whose window
cannot be trained on keeps its error and still starts the cooldown. The real submission is
`test_retrain_submit.py` (the session stack and a real pipeline run)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraud.data.generator import generate
from fraud.data.scenarios import get_scenario
from fraud.errors import DataValidationError
from fraud.settings import load_settings
from monitoring import retrain
from monitoring.drift import detect
from monitoring.retrain import forward_split
from monitoring.window import Window, read_transactions
from pipelines.retraining import submitter, write_window
from tests.monitoring.conftest import World, sample

START = datetime(2026, 12, 6, tzinfo=UTC)
POLICY = retrain.RetrainPolicy(sustained_windows=3, min_new_frauds=20, cooldown=timedelta(hours=24))


def run_windows(world: World, months: list[int], scenario: str | None, windows: int) -> list[retrain.Trigger]:
    state = retrain.RetrainState()
    fired = []
    for i in range(windows):
        month = world.month(months[i % len(months)], get_scenario(scenario) if scenario else None)
        window = sample(month, 5_000, i)
        result = detect(window, world.reference)
        state, trigger = retrain.observe(
            state,
            POLICY,
            now=START + timedelta(hours=i),
            drift=result.drift,
            drifted=[c.name for c in result.drifted],
            new_frauds=int(np.sum(window["isFraud"] > 0)),
        )
        if trigger:
            fired.append(trigger)
    return fired


def test_sustained_drift_triggers_exactly_once(world: World) -> None:
    fired = run_windows(world, [21, 22], "type_mix", 8)
    assert len(fired) == 1
    assert "drift in 3 consecutive windows" in fired[0].reason and "type" in fired[0].drifted


def test_healthy_traffic_never_triggers(world: World) -> None:
    assert run_windows(world, [23, 24], None, 8) == []


def test_guards_hold_a_trigger_back() -> None:
    state = retrain.RetrainState()
    for i in range(5):  # drifting, but no labelled fraud to learn from
        state, trigger = retrain.observe(
            state, POLICY, now=START + timedelta(hours=i), drift=True, drifted=["amount"], new_frauds=0
        )
        assert trigger is None
    state, trigger = retrain.observe(
        state, POLICY, now=START + timedelta(hours=6), drift=True, drifted=["amount"], new_frauds=25
    )
    assert trigger is not None and trigger.new_frauds == 25
    for i in range(7, 30):  # inside the cooldown: nothing, however much drift and fraud
        state, trigger = retrain.observe(
            state, POLICY, now=START + timedelta(hours=i), drift=True, drifted=["amount"], new_frauds=100
        )
        assert trigger is None
    state, trigger = retrain.observe(
        state, POLICY, now=START + timedelta(hours=31), drift=True, drifted=["amount"], new_frauds=1
    )
    assert trigger is not None
    restored = retrain.RetrainState.from_json(state.to_json())
    assert restored == state and len(restored.triggers) == 2


def test_a_measured_recall_drop_is_a_reason() -> None:
    assert retrain.performance_dropped(0.30, 0.5, POLICY)
    assert not retrain.performance_dropped(0.45, 0.5, POLICY)
    assert not retrain.performance_dropped(None, 0.5, POLICY)


def test_frauds_slipping_under_the_block_threshold_fire_on_measured_recall(world: World) -> None:
    """No drift needed: a window whose frauds the version no longer blocks (their scores fallen a hundredfold) has
    a measured recall whose upper bound is far below the reference's, and that alone fires the policy; the same
    window as served does not."""
    window = sample(world.month(23), 20_000, 0)
    healthy = retrain.recall_drop(window, world.reference, POLICY)
    assert healthy["frauds"] >= 10 and healthy["reference_recall"] > 0.3 and not healthy["dropped"], healthy
    slipped = window.copy()
    frauds = slipped["isFraud"] == 1
    slipped.loc[frauds, "score"] = slipped.loc[frauds, "score"] * 0.01
    dropped = retrain.recall_drop(slipped, world.reference, POLICY)
    assert dropped["dropped"] and dropped["recall"] == 0.0, dropped
    state, trigger = retrain.observe(
        retrain.RetrainState(),
        POLICY,
        now=START,
        drift=False,
        drifted=[],
        new_frauds=dropped["frauds"] + POLICY.min_new_frauds,
        performance_drop=dropped["dropped"],
    )
    assert trigger is not None and "measured recall dropped" in trigger.reason
    assert state.last_trigger_at == START.isoformat(timespec="seconds")


def test_forward_split_puts_fraud_in_every_block() -> None:
    """The row quantiles of this window (70 % / 85 % at steps 70 / 85) leave validation without fraud; the split
    moves its boundaries so that each block the pipeline checks holds one, still forward in time."""
    steps = np.arange(1, 101)
    is_fraud = np.isin(steps, [10, 20, 60, 95])
    train_end, valid_end = forward_split(steps, is_fraud)
    train, valid, test = (
        is_fraud[steps <= train_end],
        is_fraud[(steps > train_end) & (steps <= valid_end)],
        is_fraud[steps > valid_end],
    )
    assert train.any() and valid.any() and test.any()
    assert train_end < valid_end
    assert (train_end, valid_end) == (59, 85)  # validation reaches back to step 60; test keeps the row quantile


def test_forward_split_keeps_the_row_quantiles_when_fraud_is_spread() -> None:
    steps = np.arange(1, 101)
    assert forward_split(steps, steps % 5 == 0) == (70, 85)


def test_forward_split_moves_late_frauds_into_each_block() -> None:
    steps = np.arange(1, 101)
    assert forward_split(steps, np.isin(steps, [90, 95, 99])) == (90, 95)


def test_forward_split_refuses_a_window_whose_frauds_cannot_fill_three_blocks() -> None:
    steps = np.arange(1, 101)
    with pytest.raises(DataValidationError, match="2 distinct step"):
        forward_split(steps, np.isin(steps, [50, 90]))


def logged(rows: int, seed: int) -> pd.DataFrame:
    """Rows as the inference log holds them: no post-transaction balances, labels only where they matured."""
    frame: pd.DataFrame = generate(rows, seed=seed).to_pandas()
    frame = frame.drop(columns=["newbalanceOrig", "newbalanceDest", "isFlaggedFraud"])
    frame["isFraud"] = frame["isFraud"].astype(np.float64)
    frame.loc[frame.index % 10 == 0, "isFraud"] = np.nan  # pending labels
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # arrival order, not step order


def test_the_training_table_is_a_valid_dataset_file_of_the_labelled_rows(tmp_path: Path) -> None:
    frame = logged(5_000, seed=3)
    window = retrain.training_window(frame)
    table = window.table
    assert len(table) == int(frame["isFraud"].notna().sum())
    assert table["step"].is_monotonic_increasing
    assert window.frauds == int(np.nansum(frame["isFraud"])) > 0
    cash_in = table.loc[table["type"] == "CASH_IN"].iloc[0]
    assert cash_in["newbalanceOrig"] == pytest.approx(cash_in["oldbalanceOrg"] + cash_in["amount"])
    payment = table.loc[table["type"] == "PAYMENT"].iloc[0]
    assert payment["newbalanceOrig"] == pytest.approx(max(payment["oldbalanceOrg"] - payment["amount"], 0.0))
    path = write_window(window, tmp_path)
    assert len(read_transactions(str(path), load_settings())) == len(table)  # passes the dataset's contract
    with pytest.raises(DataValidationError, match="no labelled rows"):
        retrain.training_table(frame.assign(isFraud=np.nan))


def test_a_window_that_cannot_be_trained_on_keeps_the_error_and_starts_the_cooldown(
    world: World, tmp_path: Path
) -> None:
    """Frauds on only two steps cannot fill train, validation and test: the trigger is kept with the reason why
    (before anything is submitted) and the next sustained drift waits for the cooldown."""
    frame = logged(2_000, seed=4)
    steps = frame["step"].to_numpy(dtype=np.int64)
    steps[:2] = [10, 20]
    frame["step"] = steps
    frame["isFraud"] = np.where(np.arange(len(frame)) < 2, 1.0, 0.0)
    frame["amount"] *= 3  # drift
    frame["score"] = world.score(frame)
    frame["decision"] = world.thresholds.decide(frame["score"].to_numpy())
    policy = retrain.RetrainPolicy(sustained_windows=1, min_new_frauds=1, cooldown=timedelta(hours=24))
    state_file = tmp_path / "retrain.json"
    submit = submitter(load_settings(), tmp_path / "data")
    window = Window(frame, "test window")
    drifting = detect(frame, world.reference)
    assert drifting.drift and "amount" in [c.name for c in drifting.drifted]
    outcome = retrain.check(state_file, policy, drifting, window, START, submit)
    assert outcome["triggered"] and "2 distinct step" in outcome["error"]
    state = retrain.load(state_file)
    assert state.last_trigger_at == START.isoformat(timespec="seconds")
    assert "2 distinct step" in state.triggers[0].result["error"]
    assert not (tmp_path / "data").exists()  # nothing was written or submitted
    later = retrain.check(state_file, policy, drifting, window, START + timedelta(hours=1), submit)
    assert later == {"triggered": False, "drift_windows": 1, "new_frauds": 2, "recall": None}
