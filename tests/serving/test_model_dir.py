"""A predictor on a mounted model directory (KServe's /mnt/models), without a registry, and its graceful shutdown."""

from __future__ import annotations

import asyncio
import dataclasses
import http.client
import shutil
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
import yaml

from fraud.errors import ConfigError
from fraud.settings import load_settings
from pipelines.runner import PipelineOutcome
from serving.artifacts import DirectorySource, read_model_dir
from serving.predictor import FraudPredictor, _Job
from serving.process import LOOPBACK as HOST
from serving.process import PredictorProcess
from serving.validation import EXAMPLE_TRANSACTION as TRANSACTION

pytestmark = [pytest.mark.stack, pytest.mark.slow]


@pytest.fixture(scope="module")
def mounted(model_dir: Path, start_predictor: Callable[..., PredictorProcess]) -> Iterator[PredictorProcess]:
    # nothing listens on port 9: the predictor must not need the registry to serve a directory
    server = start_predictor(
        "mounted", args=["--model_dir", str(model_dir)], env={"MLFLOW_TRACKING_URI": f"http://{HOST}:9"}
    )
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def test_reads_the_version_from_the_directory(model_dir: Path, served_model: PipelineOutcome, tmp_path: Path) -> None:
    assert read_model_dir(model_dir).version == served_model.version  # registered_model_meta
    copy = Path(shutil.copytree(model_dir, tmp_path / "model"))
    (copy / "registered_model_meta").unlink()
    run_id = yaml.safe_load((copy / "MLmodel").read_text())["run_id"]
    assert read_model_dir(copy).version == run_id
    assert read_model_dir(copy, "2026-11-canary").version == "2026-11-canary"  # FRAUD_MODEL_VERSION


def test_serves_a_mounted_directory_without_the_registry(
    mounted: PredictorProcess, served_model: PipelineOutcome
) -> None:
    answer = requests.post(mounted.v1_url, json={"instances": [TRANSACTION]}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"][0]["model_version"] == served_model.version


def _start_slow_upload(server: PredictorProcess, body: bytes) -> tuple[http.client.HTTPConnection, bytes]:
    """Send the headers and half the body: the request is in flight until the rest arrives."""
    connection = http.client.HTTPConnection(HOST, server.http_port, timeout=60)
    connection.putrequest("POST", "/v1/models/fraud-detector:predict")
    connection.putheader("content-type", "application/json")
    connection.putheader("content-length", str(len(body)))
    connection.endheaders()
    half = len(body) // 2
    connection.send(body[:half])
    return connection, body[half:]


def test_sigterm_drains_in_flight_requests_then_exits_0(mounted: PredictorProcess) -> None:
    # given requests in flight: a single transaction and three 1,000-transaction batches, half uploaded
    bodies = [orjson.dumps({"instances": [TRANSACTION]})]
    bodies += [orjson.dumps({"instances": [{**TRANSACTION, "amount": float(a)} for a in range(1, 1001)]})] * 3
    in_flight = [_start_slow_upload(mounted, body) for body in bodies]
    time.sleep(0.5)  # the server has read their headers: each request has begun

    # when the predictor is told to stop
    mounted.process.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    # then it accepts no new connection
    with pytest.raises(OSError), socket.create_connection((HOST, mounted.http_port), timeout=2):
        pass
    # but finishes every request already in flight
    for connection, rest in in_flight:
        connection.send(rest)
        response = connection.getresponse()
        assert response.status == 200
        assert len(orjson.loads(response.read())["predictions"]) in {1, 1000}
        connection.close()
    # and exits cleanly
    assert mounted.process.wait(30) == 0
    messages = [r.get("msg", "") for r in mounted.log_records()]
    assert any("draining in-flight" in m for m in messages)
    assert any(m == "model server stopped" for m in messages)


def _predictor(model_dir: Path, **settings: object) -> FraudPredictor:
    configured = load_settings().model_copy(update=settings)
    predictor = FraudPredictor("fraud-detector", DirectorySource(model_dir), configured)
    assert predictor.load()
    return predictor


def test_the_review_band_is_configurable(model_dir: Path) -> None:
    rows = {"step": [3, 14, 200], "type": ["TRANSFER", "PAYMENT", "CASH_OUT"], "amount": [181_000.0, 12.0, 5e5]}
    rows |= {"nameOrig": ["C1", "C2", "C3"], "nameDest": ["C4", "M5", "C6"]}
    stored = _predictor(model_dir)
    everything = _predictor(model_dir, serve_review_threshold=0.0)
    assert stored.served is not None
    block = stored.served.thresholds.block
    as_stored = stored.score(rows)
    widened = everything.score(rows)
    # the same probabilities, but with the band's lower edge at 0 every transaction below block is reviewed
    assert [p["fraud_probability"] for p in as_stored] == [p["fraud_probability"] for p in widened]
    assert all(p["decision"] == ("block" if p["fraud_probability"] >= block else "review") for p in widened)
    # a band that would start above the block threshold is a configuration error, named as such
    served = stored.served
    low_block = dataclasses.replace(served, thresholds=dataclasses.replace(served.thresholds, block=0.5, review=0.4))
    above = FraudPredictor(
        "fraud-detector", DirectorySource(model_dir), load_settings().model_copy(update={"serve_review_threshold": 0.6})
    )
    with pytest.raises(ConfigError, match=r"FRAUD_SERVE_REVIEW_THRESHOLD=0.6 does not fit"):
        above._effective_thresholds(low_block)


def test_requests_scored_together_get_the_answers_they_get_alone(model_dir: Path) -> None:
    # given requests of different sizes and reason modes, validated as the server would
    predictor = _predictor(model_dir)
    instances = [{**TRANSACTION, "step": step, "amount": 10.0 * step**2} for step in range(1, 30)]
    bodies: list[dict[str, Any]] = [
        {"instances": instances[:1]},
        {"instances": instances[1:9], "parameters": {"reasons": "flagged"}},
        {"instances": instances[9:10], "parameters": {"reasons": "none"}},
        {"instances": instances[10:]},
    ]

    async def prepare() -> list[Any]:
        return [await predictor.preprocess(body) for body in bodies]

    jobs = [_Job(predictor._loaded, r.batch, r.features, None) for r in asyncio.run(prepare())]  # type: ignore[arg-type]
    # when they are scored in one model call (as the micro-batcher does) and one by one
    together = FraudPredictor._score_jobs(jobs)
    alone = [FraudPredictor._score_jobs([job])[0] for job in jobs]
    # then every request gets exactly its own answer
    for a, b in zip(together, alone, strict=True):
        assert a.probability.tolist() == b.probability.tolist()
        assert a.decisions.tolist() == b.decisions.tolist()
        assert a.explained_rows.tolist() == b.explained_rows.tolist()
        assert (a.contributions is None) == (b.contributions is None)
        if a.contributions is not None and b.contributions is not None:
            assert a.contributions.tolist() == b.contributions.tolist()
    assert [len(s.probability) for s in together] == [1, 8, 1, 19]
