"""`fraudctl monitor labels/drift/report/status` against the session stack's real servers.

A small pipeline run registers a version (with its stored drift reference) in the session's MLflow server;
1,500 predictions of that version are logged through a real collector into the session's S3 store; their
labels arrive later through `fraudctl monitor labels`. The commands then judge a shifted file and a healthy
one (`drift --current`), the logged window (`drift --since`), write the daily report (measured performance
once the labels are in) and show the state (`status`). `drift --json` is also run as a real `fraudctl`
process, so its standard output is checked to be exactly the one JSON object the issue specifies.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import mlflow.pyfunc
import orjson
import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from fraud.cli.main import main
from fraud.data.generator import generate, write
from fraud.data.scenarios import Scenario, get_scenario
from fraud.settings import Settings, reset_settings
from fraud.store import ObjectStore, S3Uri
from monitoring import reference as reference_module
from pipelines.runner import run_local

from .conftest import Harness

# Each module-scoped pipeline run takes a minute on two free cores and far longer on a loaded machine.
pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.timeout(1800)]

VALID_END = 408
SMALL = {
    "source": "generator",
    "rows": 20_000,
    "seed": 5,
    "train_end_step": 240,
    "valid_end_step": VALID_END,
    "n_trials": 2,
    "families": "logreg",
    "timeout_s": 300.0,
    "feature_set": "strict",
}
FIELDS = ["step", "type", "amount", "nameOrig", "oldbalanceOrg", "nameDest", "oldbalanceDest"]
LOGGED = 1_500
BATCH = 100


@pytest.fixture(scope="module")
def version(stack: Settings) -> str:
    return run_local(stack, SMALL).version


@pytest.fixture(scope="module")
def env(stack: Settings, shared_collector: Harness) -> dict[str, str]:
    """What a user's shell would hold: the stack's servers, the collector's bucket, labels final at once."""
    return {
        **stack.server_env(),
        "FRAUD_MONITOR_LOG_BUCKET": shared_collector.settings.monitor_log_bucket,
        "FRAUD_COLLECTOR_URL": shared_collector.url,
        "FRAUD_MONITOR_LABEL_MATURITY_SECONDS": "0",
    }


@pytest.fixture
def cli_env(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    reset_settings()
    yield
    reset_settings()


@pytest.fixture(scope="module")
def logged(stack: Settings, version: str, shared_collector: Harness) -> pd.DataFrame:
    """1,500 transactions scored by the version, logged as request/response events through the collector."""
    model = mlflow.pyfunc.load_model(f"models:/{stack.model_name}/{version}")
    month: pd.DataFrame = generate(20_000, seed=9).to_pandas().iloc[:LOGGED].reset_index(drop=True)
    answers = model.predict(month[FIELDS])
    month["request_id"] = [f"daily-{i // BATCH * BATCH}" for i in range(LOGGED)]
    month["row"] = [i % BATCH for i in range(LOGGED)]
    for start in range(0, LOGGED, BATCH):
        rows = month.iloc[start : start + BATCH]
        request = orjson.dumps({"instances": rows[FIELDS].to_dict("records")})
        response = orjson.dumps(
            {
                "predictions": [
                    {"fraud_probability": float(p), "decision": str(d), "model_version": version, "reasons": []}
                    for p, d in zip(
                        answers["fraud_probability"].iloc[start : start + BATCH],
                        answers["decision"].iloc[start : start + BATCH],
                        strict=True,
                    )
                ]
            }
        )
        assert shared_collector.send(f"daily-{start}", "request", request).ok
        assert shared_collector.send(f"daily-{start}", "response", response).ok
    shared_collector.flush()  # whatever the collector has not flushed on its own yet
    return month


def validation_days(path: Path, seed: int, scenario: Scenario | None = None) -> tuple[Path, int]:
    """Another month's rows on the reference's days (steps 241-408), as a file: last week's traffic of a healthy
    (or shifted) world, the same period of the month the version's reference covers."""
    table = generate(20_000, seed=seed, scenario=scenario)
    steps = table["step"]
    table = table.filter(pc.and_(pc.greater(steps, SMALL["train_end_step"]), pc.less_equal(steps, VALID_END)))
    pq.write_table(table, path)
    return path, table.num_rows


def run_fraudctl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The installed `fraudctl` entry point as a separate process, as a user (or a cron job) runs it."""
    fraudctl = Path(sys.executable).with_name("fraudctl")
    return subprocess.run(
        [str(fraudctl), *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=600, check=False
    )


def test_a_registered_version_stores_its_reference(stack: Settings, version: str) -> None:
    reference = reference_module.load(stack, version)
    assert reference.version == version and reference.run_id
    assert 0 < len(reference.sample) <= 20_000 and len(reference.scores) >= len(reference.sample)
    decided = reference.thresholds.decide(reference.scores["score"].to_numpy())
    assert (reference.scores["decision"].to_numpy() == decided).all()
    assert reference.scores["isFraud"].sum() > 0
    assert reference.scores["step"].between(241, 408).all()  # the validation block


def test_drift_json_of_a_shifted_file_from_a_real_process(
    version: str, env: dict[str, str], tmp_path: Path, stack: Settings
) -> None:
    shifted = write(
        tmp_path / "shifted.parquet", 20_000, seed=8, scenario=get_scenario("amount_shift", amount_factor=3)
    )
    html = tmp_path / "drift.html"
    done = run_fraudctl(
        {**env, "FRAUD_HOME": str(tmp_path / "home")},
        *("monitor", "drift", "--current", str(shifted), "--version", version, "--json"),
        *("--html", str(html), "--no-evidently"),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)  # stdout is exactly one JSON object: progress goes to stderr
    assert result["drift"] is True and result["rows"] == 20_000 and result["reference_version"] == version
    columns = {c["name"]: c for c in result["columns"]}
    assert {"amount", "type", "hour", "day", "score"} <= columns.keys()
    for column in result["columns"]:
        assert {"name", "statistic", "threshold", "drift"} <= column.keys()
        assert isinstance(column["drift"], bool)
    assert columns["amount"]["drift"] is True
    assert columns["amount"]["statistic"] >= columns["amount"]["threshold"]
    assert columns["type"]["drift"] is False  # only amounts moved
    assert columns["day"]["drift"] is False and columns["day"]["threshold"] is None  # reported, not tested
    assert html.is_file() and "amount" in html.read_text()
    assert result["html"] == str(html)


def test_drift_of_a_healthy_file_and_of_a_missing_one(
    version: str, cli_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    healthy, rows = validation_days(tmp_path / "healthy.parquet", seed=8)
    capsys.readouterr()
    assert main(["monitor", "drift", "--current", str(healthy), "--version", version, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["rows"] == rows
    assert result["drift"] is False, result["drifted"]
    assert result["alert"]["status"] == "inactive"
    code = main(["monitor", "drift", "--current", str(tmp_path / "missing.csv"), "--version", version])
    assert code != 0
    assert "missing.csv" in capsys.readouterr().err


def test_labels_then_drift_and_report_of_the_logged_window(
    stack: Settings,
    version: str,
    logged: pd.DataFrame,
    cli_env: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # labels arrive later, as a CSV the fraud team exports: (request id, row, isFraud)
    labels_file = tmp_path / "labels.csv"
    logged[["request_id", "row", "isFraud"]].to_csv(labels_file, index=False)
    capsys.readouterr()
    assert main(["monitor", "labels", "--source", str(labels_file)]) == 0
    out = capsys.readouterr().out
    assert f"added {LOGGED:,} labels ({int(logged['isFraud'].sum()):,} fraud)" in out

    # a bad file is refused with the column named, and nothing is written
    bad = tmp_path / "bad.csv"
    logged[["request_id", "row"]].assign(isFraud=2).head(3).to_csv(bad, index=False)
    assert main(["monitor", "labels", "--source", str(bad)]) != 0
    assert "isFraud" in capsys.readouterr().err

    # drift of the logged window: the version's own traffic, with its matured labels
    assert main(["monitor", "drift", "--since", "2h", "--version", version, "--json", "--no-segments"]) == 0
    window = json.loads(capsys.readouterr().out)
    assert window["rows"] == LOGGED and window["reference_version"] == version
    assert window["window"]["source"].startswith("inference log")
    assert window["window"]["pending_labels"] == 0
    assert "fraud_rate" in {c["name"] for c in window["columns"]}  # the labels reached the drift window

    # the daily report: measured performance now that every label is final
    day = datetime.now(UTC).date().isoformat()
    assert main(["monitor", "report", "--day", day, "--version", version, "--output", str(tmp_path)]) == 0
    data = json.loads((tmp_path / f"day={day}" / "report.json").read_text())
    assert data["volumes"]["rows"] >= LOGGED
    assert data["volumes"]["by_model_version"][version] == LOGGED
    assert data["performance"]["kind"] == "measured"
    assert data["drift"]["rows"] == LOGGED
    store = ObjectStore.from_settings(stack)
    keys = {u.key for u in store.list(S3Uri(stack.data_bucket, f"monitoring/reports/day={day}/"))}
    assert keys == {f"monitoring/reports/day={day}/report.html", f"monitoring/reports/day={day}/report.json"}

    # status: the collector's counters and the last verdict
    capsys.readouterr()
    assert main(["monitor", "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["collector"]["up"] is True
    assert status["drift"]["rows"] == LOGGED and status["drift"]["reference_version"] == version
