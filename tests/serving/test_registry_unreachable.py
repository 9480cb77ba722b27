"""While the registry cannot be reached, the loader says so (with the cause), not that an alias is missing."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from fraud.errors import RegistryError
from fraud.registry import version_by_alias
from fraud.stack.ports import pick_free_ports
from serving.artifacts import RegistrySource, resolve_version
from serving.process import LOOPBACK


@pytest.fixture
def nowhere(monkeypatch: pytest.MonkeyPatch) -> str:
    """A registry address where nothing listens (MLflow's client set up as the predictor sets it: no retries)."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    (port,) = pick_free_ports(1, LOOPBACK)
    return f"http://{LOOPBACK}:{port}"


def test_the_loader_says_the_registry_is_unreachable_with_the_cause(nowhere: str) -> None:
    source = RegistrySource(tracking_uri=nowhere, name="fraud-detector", alias="champion")
    with pytest.raises(RegistryError) as raised:
        resolve_version(source)
    message = str(raised.value)
    assert f"registry at {nowhere} is unreachable" in message
    assert "Connection refused" in message or "Max retries" in message, message  # the cause stays visible
    assert "has no alias" not in message


def test_a_pinned_version_too(nowhere: str) -> None:
    source = RegistrySource(tracking_uri=nowhere, name="fraud-detector", alias="champion", version="3")
    with pytest.raises(RegistryError, match="is unreachable while reading version 3 of model 'fraud-detector'"):
        resolve_version(source)


def test_reading_an_alias_elsewhere_says_so_too(nowhere: str) -> None:
    with pytest.raises(RegistryError, match="is unreachable while reading alias 'champion'"):
        version_by_alias(MlflowClient(tracking_uri=nowhere), "fraud-detector", "champion")
