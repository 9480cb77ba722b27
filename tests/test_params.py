"""Training parameters and settings are declared once and travel whole: to the CLI, the pipeline and its steps."""

from __future__ import annotations

import os

import pytest
from pydantic import SecretStr

from fraud.cli.main import main
from fraud.errors import ConfigError
from fraud.params import TrainingParams
from fraud.settings import Settings, load_settings


def test_settings_survive_the_trip_through_a_child_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the local runner hands a step (`Settings.environment`) reads back as the very same settings."""
    given = Settings(
        model_name="fraud-other",
        experiment_name="elsewhere",
        data_bucket="other-data",
        mlflow_tracking_uri="http://127.0.0.1:5999",
        s3_endpoint_url="http://127.0.0.1:8999",
        aws_access_key_id="key",
        aws_secret_access_key=SecretStr("secret"),
        serve_reasons="all",
        http_timeout=12.5,
        debug=True,
    )
    for name in list(os.environ):
        if name.startswith(("FRAUD_", "AWS_", "MLFLOW_")):
            monkeypatch.delenv(name)
    for name, value in given.environment().items():
        monkeypatch.setenv(name, value)
    seen = load_settings()
    assert seen.model_dump(exclude={"aws_secret_access_key", "home"}) == given.model_dump(
        exclude={"aws_secret_access_key", "home"}
    )
    assert seen.s3_credentials() == ("key", "secret")
    assert seen.home_dir == given.home_dir


def test_a_bad_parameter_is_named() -> None:
    with pytest.raises(ConfigError, match="alert_budget"):
        TrainingParams.parse({"alert_budget": 1.5})
    with pytest.raises(ConfigError, match="families"):
        TrainingParams.parse({"families": "xgboost,forest"})
    with pytest.raises(ConfigError, match="train_end_step < valid_end_step"):
        TrainingParams.parse({"train_end_step": 400, "valid_end_step": 300})


def test_the_cli_refuses_a_bad_option_before_running_anything(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pipeline", "run", "--feature-set", "bogus"]) == 2
    assert "--feature-set" in capsys.readouterr().err
    assert main(["pipeline", "run", "--train-end-step", "500", "--valid-end-step", "400"]) == 2
