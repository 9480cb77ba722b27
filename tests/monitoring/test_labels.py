"""Late labels: posted or loaded from a file, joined to logged predictions, only once they are mature."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from fraud.cli.main import main
from fraud.errors import DataValidationError
from monitoring.labels import labelled_predictions, labels_from_frame

from .conftest import Harness
from .test_collector import v1_request, v1_response


def test_labels_from_the_endpoint_and_a_file_join_predictions_by_request_id_and_row(
    shared_collector: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = shared_collector
    for i in range(6):
        c.send(f"lab-{i}", "request", v1_request(i, i + 100))  # two transactions per request: rows 0 and 1
        c.send(f"lab-{i}", "response", v1_response(i, i + 100))
    posted = c.session.post(
        f"{c.url}/v1/labels",
        json={
            "labels": [
                {"request_id": "lab-0", "row": 0, "isFraud": 1},
                {"request_id": "lab-0", "row": 1, "isFraud": 0},
                {"request_id": "lab-1", "isFraud": 0, "labeled_at": "2026-01-01T00:00:00Z"},
            ]
        },
        timeout=10,
    )
    assert posted.json() == {"accepted": 3, "unknown": 0}
    c.flush()

    source = tmp_path / "chargebacks.csv"
    pd.DataFrame({"request_id": ["lab-1", "lab-2", "lab-3"], "row": [0, 1, 0], "isFraud": [1, 1, 0]}).to_csv(
        source, index=False
    )
    for name, value in c.settings.server_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("FRAUD_MONITOR_LOG_BUCKET", c.settings.monitor_log_bucket)
    from fraud.settings import reset_settings

    reset_settings()
    assert main(["monitor", "labels", "--source", str(source)]) == 0
    reset_settings()

    now = datetime.now(UTC)
    since, until = now - timedelta(hours=1), now + timedelta(hours=1)
    joined = labelled_predictions(c.settings, since, until, maturity_seconds=0)
    ours = joined.frame[joined.frame["request_id"].str.startswith("lab-")].set_index(["request_id", "row"])
    assert ours["isFraud"].to_dict() == {
        ("lab-0", 0): 1,
        ("lab-0", 1): 0,
        ("lab-1", 0): 1,  # the file's label is later than the posted one of 2026-01-01
        ("lab-2", 1): 1,
        ("lab-3", 0): 0,
    }
    assert ours.loc[("lab-0", 0), "score"] == 0.0
    unlabelled = joined.rows - joined.labelled
    assert joined.unlabelled == unlabelled and joined.immature == 0 and joined.pending == unlabelled

    young = labelled_predictions(c.settings, since, until, maturity_seconds=3600)
    assert young.labelled == 0 and young.immature == young.rows and young.pending == young.rows


def test_label_files_with_a_bad_value_name_the_row_and_column() -> None:
    frame = pd.DataFrame({"request_id": ["a", "b"], "isFraud": [0, 2]})
    with pytest.raises(DataValidationError, match=r"row 1, column 'isFraud': must be 0 or 1"):
        labels_from_frame(frame, datetime.now(UTC))
    with pytest.raises(DataValidationError, match="missing isFraud"):
        labels_from_frame(pd.DataFrame({"request_id": ["a"]}), datetime.now(UTC))
