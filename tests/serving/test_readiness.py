"""Not ready until loaded: a predictor started before the registry is reachable, or before the model exists."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
import requests
from kserve import InferenceGRPCClient

from pipelines.runner import PipelineOutcome
from serving.process import PredictorProcess
from serving.validation import EXAMPLE_TRANSACTION as TRANSACTION

pytestmark = [pytest.mark.stack, pytest.mark.slow]


def grpc_ready(server: PredictorProcess) -> tuple[bool, bool]:
    async def ask() -> tuple[bool, bool]:
        client = InferenceGRPCClient(server.grpc_target, timeout=10)
        try:
            return bool(await client.is_server_live()), bool(await client.is_server_ready())
        finally:
            await client.close()

    return asyncio.run(ask())


def test_started_before_the_registry_is_reachable_it_waits_then_serves(
    offline_server: PredictorProcess, open_registry: Callable[[], None], served_model: PipelineOutcome
) -> None:
    # given a predictor whose registry address has had nothing listening since it started
    server = offline_server
    server.wait_live()
    # then it is live but not ready, on every probe, and refuses to score with 503
    assert requests.get(f"{server.url}/v2/health/live", timeout=5).status_code == 200
    assert requests.get(f"{server.url}/v2/health/ready", timeout=5).status_code == 503
    model = requests.get(f"{server.url}/v1/models/fraud-detector", timeout=5)
    assert model.status_code == 503
    assert requests.get(f"{server.url}/v2/models/fraud-detector/ready", timeout=5).status_code == 503
    predict = requests.post(server.v1_url, json={"instances": [TRANSACTION]}, timeout=5)
    assert predict.status_code == 503
    assert "not ready" in predict.json()["error"]
    assert grpc_ready(server) == (True, False)
    # and it logs why, attempt after attempt
    failures = [r for r in server.log_records() if r.get("event") == "model_load_failed"]
    assert len(failures) >= 2
    assert any("Connection refused" in r["msg"] or "Max retries" in r["msg"] for r in failures), failures[-1]["msg"]
    assert all(r["level"] == "WARNING" and "exc" not in r for r in failures)

    # when the registry becomes reachable
    open_registry()
    started = time.monotonic()
    server.wait_ready(timeout=60)
    # then it loads the aliased version within the retry cap and serves it
    assert time.monotonic() - started < 30
    assert requests.get(f"{server.url}/v1/models/fraud-detector", timeout=5).json() == {
        "name": "fraud-detector",
        "ready": True,
    }
    answer = requests.post(server.v1_url, json={"instances": [TRANSACTION]}, timeout=10)
    assert answer.status_code == 200
    assert answer.json()["predictions"][0]["model_version"] == served_model.version
    assert grpc_ready(server) == (True, True)


def test_started_before_the_model_was_registered_it_loads_it_once_it_exists(
    served_model: PipelineOutcome, server: PredictorProcess
) -> None:
    records = server.log_records()
    events = [r.get("event") for r in records if r.get("event") in {"model_load_failed", "model_loaded"}]
    assert events[0] == "model_load_failed", "it was started before the alias existed"
    assert events[-1] == "model_loaded"
    failure = next(r for r in records if r.get("event") == "model_load_failed")
    assert "serving-test" in failure["msg"]
    loaded = next(r for r in records if r.get("event") == "model_loaded")
    assert loaded["model_version"] == served_model.version
