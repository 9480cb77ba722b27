"""`fraudctl monitor drift/report/status` against the real stack: a registered version's stored reference, a shifted
file judged from the command line, and the daily report of traffic logged through the real collector."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import mlflow.pyfunc
import orjson
import pytest

from fraud.cli.main import main
from fraud.data.generator import generate, write
from fraud.data.scenarios import get_scenario
from fraud.settings import Settings, reset_settings
from fraud.store import ObjectStore, S3Uri
from monitoring import reference as reference_module
from pipelines.runner import run_local

from .conftest import Harness

pytestmark = [pytest.mark.stack, pytest.mark.slow]

SMALL = {
    "source": "generator",
    "rows": 20_000,
    "seed": 5,
    "train_end_step": 240,
    "valid_end_step": 408,
    "n_trials": 2,
    "families": "logreg",
    "timeout_s": 300.0,
    "feature_set": "strict",
}


@pytest.fixture(scope="module")
def version(stack: Settings) -> str:
    return run_local(stack, SMALL).version


@pytest.fixture
def cli_env(stack: Settings, shared_collector: Harness, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in stack.server_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("FRAUD_MONITOR_LOG_BUCKET", shared_collector.settings.monitor_log_bucket)
    reset_settings()
    yield
    reset_settings()


def test_a_registered_version_stores_its_reference(stack: Settings, version: str) -> None:
    reference = reference_module.load(stack, version)
    assert reference.version == version and reference.run_id
    assert 0 < len(reference.sample) <= 20_000 and len(reference.scores) >= len(reference.sample)
    decided = reference.thresholds.decide(reference.scores["score"].to_numpy())
    assert (reference.scores["decision"].to_numpy() == decided).all()
    assert reference.scores["isFraud"].sum() > 0
    assert reference.scores["step"].between(241, 408).all()  # the validation block


def test_drift_of_a_shifted_file_from_the_command_line(
    version: str, cli_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shifted = write(
        tmp_path / "shifted.parquet", 20_000, seed=8, scenario=get_scenario("amount_shift", amount_factor=3)
    )
    html = tmp_path / "drift.html"
    capsys.readouterr()
    code = main(
        [
            "monitor",
            "drift",
            "--current",
            str(shifted),
            "--version",
            version,
            "--json",
            "--html",
            str(html),
            "--no-evidently",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    result = json.loads(out)
    assert result["drift"] is True and result["rows"] == 20_000 and result["reference_version"] == version
    columns = {c["name"]: c for c in result["columns"]}
    assert {"amount", "type", "hour", "day", "score"} <= columns.keys()
    assert columns["amount"]["drift"] is True
    assert columns["amount"]["statistic"] >= columns["amount"]["threshold"]
    assert html.is_file() and "amount" in html.read_text()
    assert main(["monitor", "drift", "--current", str(tmp_path / "missing.csv"), "--version", version]) != 0


def test_daily_report_of_logged_traffic(
    stack: Settings, version: str, shared_collector: Harness, cli_env: None, tmp_path: Path
) -> None:
    model = mlflow.pyfunc.load_model(f"models:/{stack.model_name}/{version}")
    month = generate(20_000, seed=9).to_pandas().iloc[:1_500]
    fields = ["step", "type", "amount", "nameOrig", "oldbalanceOrg", "nameDest", "oldbalanceDest"]
    answers = model.predict(month[fields])
    for start in range(0, len(month), 100):
        rows = month.iloc[start : start + 100]
        request = orjson.dumps({"instances": rows[fields].to_dict("records")})
        response = orjson.dumps(
            {
                "predictions": [
                    {"fraud_probability": float(p), "decision": str(d), "model_version": version, "reasons": []}
                    for p, d in zip(
                        answers["fraud_probability"].iloc[start : start + 100],
                        answers["decision"].iloc[start : start + 100],
                        strict=True,
                    )
                ]
            }
        )
        assert shared_collector.send(f"daily-{start}", "request", request).ok
        assert shared_collector.send(f"daily-{start}", "response", response).ok
    shared_collector.flush()
    day = datetime.now(UTC).date().isoformat()
    assert main(["monitor", "report", "--day", day, "--version", version, "--output", str(tmp_path)]) == 0
    data = json.loads((tmp_path / f"day={day}" / "report.json").read_text())
    assert data["volumes"]["rows"] >= 1_500
    assert data["volumes"]["by_model_version"][version] == 1_500
    assert data["performance"]["kind"] == "estimated"
    assert "drift" in data and data["drift"]["rows"] == 1_500
    store = ObjectStore.from_settings(stack)
    keys = {u.key for u in store.list(S3Uri(stack.data_bucket, f"monitoring/reports/day={day}/"))}
    assert keys == {f"monitoring/reports/day={day}/report.html", f"monitoring/reports/day={day}/report.json"}
    assert main(["monitor", "status", "--json"]) == 0
