"""Retraining end to end on the session stack: drifting logged traffic makes the monitor train a challenger.

A small pipeline run registers the serving version (with its drift reference). Windows of traffic are scored by
that version, logged as request/response events through a real collector into the session's S3 store, and
their labels arrive through `fraudctl monitor labels`. `fraudctl monitor drift --retrain` then judges each
window: with amounts tripled, the second drifting window in a row fires the trigger, and the monitor runs the
real local training pipeline (the run `fraudctl pipeline run` does) on that window's labelled rows. The new
version is the challenger, tagged with the reason; the trigger record holds the reason and the run's result;
the cooldown holds back the next sustained drift; the printed command starts a rollout of exactly that version
against the champion that served the traffic. Healthy windows, under the same policy, submit nothing.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import orjson
import pandas as pd
import pytest

from fraud.cli.main import main
from fraud.data.generator import generate
from fraud.data.scenarios import Scenario, get_scenario
from fraud.registry import CHALLENGER, CHAMPION, connect, version_by_alias
from fraud.settings import Settings, reset_settings
from pipelines.retraining import REASON_TAG
from pipelines.runner import run_local
from serving.canary.local import resolve_versions, spec_from_settings

from .conftest import Harness

pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.timeout(1800)]

TRAIN_END, VALID_END = 240, 408
BASE = {
    "source": "generator",
    "rows": 20_000,
    "seed": 5,
    "train_end_step": TRAIN_END,
    "valid_end_step": VALID_END,
    "n_trials": 1,
    "families": "logreg",
    "timeout_s": 300.0,
    "feature_set": "strict",
}
POLICY = {
    "FRAUD_MONITOR_ALERT_WINDOWS": "2",  # drift in 2 windows in a row is sustained
    "FRAUD_MONITOR_RETRAIN_MIN_FRAUDS": "1",
    "FRAUD_MONITOR_RETRAIN_COOLDOWN_HOURS": "24",
    "FRAUD_MONITOR_LABEL_MATURITY_SECONDS": "0",  # every label is final at once
}
RETRAIN = ["--retrain", "--retrain-trials", "1", "--retrain-families", "logreg", "--json", "--no-segments"]
FIELDS = ["step", "type", "amount", "nameOrig", "oldbalanceOrg", "nameDest", "oldbalanceDest"]
BATCH = 1_000
TRIPLED = get_scenario("amount_shift", amount_factor=3)


@pytest.fixture(scope="module")
def version(stack: Settings) -> str:
    return run_local(stack, BASE).version


@pytest.fixture(scope="module")
def model(stack: Settings, version: str) -> Any:
    return mlflow.pyfunc.load_model(f"models:/{stack.model_name}/{version}")


@pytest.fixture
def monitor_env(
    stack: Settings, shared_collector: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """A user's shell for the monitor: the stack's servers, the collector's log bucket, the policy above, and a
    fresh home for the monitor's state (so each test's trigger history starts empty). Yields that home."""
    home = tmp_path / "home"
    values = {
        **stack.server_env(),
        "FRAUD_HOME": str(home),
        "FRAUD_MONITOR_LOG_BUCKET": shared_collector.settings.monitor_log_bucket,
        "FRAUD_COLLECTOR_URL": shared_collector.url,
        **POLICY,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    reset_settings()
    yield home
    reset_settings()


def traffic(
    seed: int, rows: int | None, scenario: Scenario | None = None, reference_days: bool = False
) -> pd.DataFrame:
    """A generated month of 20,000 transactions (or `rows` of them at random), optionally only the reference's
    days (steps 241-408, where healthy traffic looks like the reference)."""
    month: pd.DataFrame = generate(20_000, seed=seed, scenario=scenario).to_pandas()
    if reference_days:
        month = month.loc[month["step"].between(TRAIN_END + 1, VALID_END)]
    if rows is not None:
        month = month.iloc[np.sort(np.random.default_rng(seed).choice(len(month), rows, replace=False))]
    return month.reset_index(drop=True)


def log_window(collector: Harness, model: Any, version: str, frame: pd.DataFrame, name: str) -> tuple[str, str]:
    """Score the rows with the version and log them through the collector; returns the window's [since, until)."""
    since = datetime.now(UTC) - timedelta(milliseconds=2)  # the log keeps milliseconds
    answers = model.predict(frame[FIELDS])
    for start in range(0, len(frame), BATCH):
        rows = frame.iloc[start : start + BATCH]
        request = orjson.dumps({"instances": rows[FIELDS].to_dict("records")})
        scored = answers.iloc[start : start + BATCH]
        response = orjson.dumps(
            {
                "predictions": [
                    {"fraud_probability": float(p), "decision": str(d), "model_version": version, "reasons": []}
                    for p, d in zip(scored["fraud_probability"], scored["decision"], strict=True)
                ]
            }
        )
        assert collector.send(f"{name}-{start}", "request", request).ok
        assert collector.send(f"{name}-{start}", "response", response).ok
    until = datetime.now(UTC) + timedelta(milliseconds=2)
    time.sleep(0.01)  # the next window starts after this one ends
    return since.isoformat(), until.isoformat()


def send_labels(frame: pd.DataFrame, name: str, path: Path) -> None:
    """The fraud team's late labels for a logged window, through `fraudctl monitor labels`."""
    labels = pd.DataFrame(
        {
            "request_id": [f"{name}-{i // BATCH * BATCH}" for i in range(len(frame))],
            "row": [i % BATCH for i in range(len(frame))],
            "isFraud": frame["isFraud"].to_numpy(),
        }
    )
    labels.to_csv(path, index=False)
    assert main(["monitor", "labels", "--source", str(path)]) == 0


def judge(windows: list[tuple[str, str]], version: str, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """`fraudctl monitor drift --retrain --json` on each window in turn, as a scheduled drift job would."""
    verdicts = []
    for since, until in windows:
        capsys.readouterr()
        code = main(["monitor", "drift", "--since", since, "--until", until, "--version", version, *RETRAIN])
        out = capsys.readouterr()
        assert code == 0, out.err[-3000:]
        verdicts.append(json.loads(out.out))
    return verdicts


def test_healthy_windows_submit_nothing(
    stack: Settings,
    version: str,
    model: Any,
    shared_collector: Harness,
    monitor_env: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    client = connect(stack)
    versions_before = len(client.search_model_versions(f"name='{stack.model_name}'"))
    windows = []
    for index, seed in enumerate((31, 32, 33)):
        frame = traffic(seed, 3_000, reference_days=True)
        windows.append(log_window(shared_collector, model, version, frame, f"healthy-{index}"))
        send_labels(frame, f"healthy-{index}", tmp_path / f"healthy-{index}.csv")
    shared_collector.flush()

    verdicts = judge(windows, version, capsys)
    assert [v["rows"] for v in verdicts] == [3_000, 3_000, 3_000]
    assert [v["drift"] for v in verdicts] == [False, False, False], [v["drifted"] for v in verdicts]
    assert [v["retrain"]["triggered"] for v in verdicts] == [False, False, False]
    assert verdicts[-1]["retrain"]["new_frauds"] >= 1  # labelled fraud was there: only the drift was missing
    state = json.loads((monitor_env / "monitor" / "retrain.json").read_text())
    assert state["triggers"] == [] and state["last_trigger_at"] is None
    assert len(client.search_model_versions(f"name='{stack.model_name}'")) == versions_before


def test_sustained_drift_trains_a_challenger_that_enters_the_canary_flow(
    stack: Settings,
    version: str,
    model: Any,
    shared_collector: Harness,
    monitor_env: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # four windows of traffic whose amounts tripled; the second (a whole month) is the one retrained on
    frames = [traffic(41, 4_000, TRIPLED), traffic(42, None, TRIPLED), traffic(43, 4_000, TRIPLED)]
    frames.append(traffic(44, 4_000, TRIPLED))
    windows = []
    for index, frame in enumerate(frames):
        windows.append(log_window(shared_collector, model, version, frame, f"drift-{index}"))
        send_labels(frame, f"drift-{index}", tmp_path / f"drift-{index}.csv")
    shared_collector.flush()
    client = connect(stack)
    champion = version_by_alias(client, stack.model_name, CHAMPION)
    assert champion is not None

    verdicts = judge(windows, version, capsys)
    assert [v["rows"] for v in verdicts] == [len(f) for f in frames]
    assert all(v["drift"] and "amount" in v["drifted"] for v in verdicts), [v["drifted"] for v in verdicts]
    outcomes = [v["retrain"] for v in verdicts]
    assert [o["triggered"] for o in outcomes] == [False, True, False, False], outcomes

    # the trigger ran the training pipeline on the second window: a new version, the challenger, with the reason
    fired = outcomes[1]
    assert "error" not in fired, fired.get("error")
    assert fired["submitted"] == "local" and "challenger" in fired["aliases"]
    assert fired["reason"].startswith("drift in 2 consecutive windows (amount")
    new = fired["version"]
    assert int(new) > int(version) and fired["champion_before"] == str(champion.version)
    challenger = version_by_alias(client, stack.model_name, CHALLENGER)
    assert challenger is not None and str(challenger.version) == new
    registered = client.get_model_version(stack.model_name, new)
    assert registered.tags[REASON_TAG] == fired["reason"]
    trained_on = pd.read_parquet(fired["data"])
    assert len(trained_on) == len(frames[1]) and int(trained_on["isFraud"].sum()) == int(frames[1]["isFraud"].sum())
    assert registered.run_id == fired["run_id"]

    # the trigger record: its reason and the run's result; the cooldown started and held the next sustained drift
    state = json.loads((monitor_env / "monitor" / "retrain.json").read_text())
    assert len(state["triggers"]) == 1
    trigger = state["triggers"][0]
    assert trigger["reason"] == fired["reason"] and trigger["drifted"] and "amount" in trigger["drifted"]
    assert trigger["result"]["version"] == new and trigger["result"]["run_id"] == fired["run_id"]
    assert trigger["window"]["since"] == windows[1][0]
    assert state["last_trigger_at"] == trigger["at"]
    assert outcomes[3]["drift_windows"] == 2 and outcomes[3]["new_frauds"] >= 1  # sustained again, with new
    # labelled fraud: only the cooldown holds it back

    # the printed command enters the canary flow: it resolves to the new version against the serving champion
    command = shlex.split(fired["canary"])
    assert command[:4] == ["fraudctl", "canary", "start", "--alias"] and command[4] == "challenger"
    options = dict(zip(command[3::2], command[4::2], strict=True))
    champion_version, challenger_version = resolve_versions(
        stack, None, options["--alias"], options.get("--champion-version")
    )
    assert (champion_version, challenger_version) == (str(champion.version), new)
    spec = spec_from_settings(stack, champion_version, challenger_version)
    assert spec.challenger_version == new and spec.champion_version == str(champion.version)

    # and `fraudctl monitor status` shows the trigger
    capsys.readouterr()
    assert main(["monitor", "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["retrain"]["triggers"][0]["result"]["version"] == new
