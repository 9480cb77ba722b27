"""The predictor's own payload log: a real predictor process sending to a real collector (on the session's
SeaweedFS), the joined rows read back from the store; and a collector that hangs or is gone costs no answer."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from fraud.settings import Settings
from fraud.stack.ports import pick_free_ports
from monitoring.collector.process import CollectorProcess
from monitoring.inference_log import read_log
from pipelines.runner import PipelineOutcome
from serving.process import LOOPBACK as HOST
from serving.process import PredictorProcess
from serving.validation import EXAMPLE_TRANSACTION as TRANSACTION

pytestmark = [pytest.mark.stack, pytest.mark.slow]

COLLECTOR_ENV = {"FRAUD_COLLECTOR_FLUSH_SECONDS": "0.3", "FRAUD_COLLECTOR_UNMATCHED_SECONDS": "1.5"}


def transaction(i: int) -> dict[str, Any]:
    return {**TRANSACTION, "amount": 100.0 + 37.0 * i, "nameOrig": f"C{i}", "step": 1 + i % 50}


def v2_body(rows: list[dict[str, Any]]) -> dict[str, Any]:
    kinds = {int: "INT64", float: "FP64", str: "BYTES"}
    return {
        "inputs": [
            {"name": n, "datatype": kinds[type(v)], "shape": [len(rows)], "data": [r[n] for r in rows]}
            for n, v in rows[0].items()
        ]
    }


def metric(server: PredictorProcess, name: str) -> float:
    for line in requests.get(f"{server.url}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} is not on {server.url}/metrics")


@pytest.fixture
def collector(stack: Settings, tmp_path: Path) -> Iterator[tuple[CollectorProcess, Settings]]:
    settings = stack.model_copy(update={"monitor_log_bucket": f"log-{uuid.uuid4().hex[:12]}"})
    port = pick_free_ports(1, settings.stack_host)[0]
    process = CollectorProcess.start(
        settings, port=port, wal_dir=tmp_path / "wal", log_path=tmp_path / "collector.log", env=COLLECTOR_ENV
    )
    try:
        process.wait_ready(timeout=120)
        yield process, settings
    finally:
        process.stop()


@pytest.fixture
def logging_predictor(
    model_dir: Path, start_predictor: Callable[..., PredictorProcess]
) -> Iterator[Callable[[str], PredictorProcess]]:
    started: list[PredictorProcess] = []

    def start(logger_url: str) -> PredictorProcess:
        server = start_predictor(
            f"logging-{len(started)}",
            args=["--model_dir", str(model_dir), "--enable_grpc", "false", "--logger_url", logger_url],
        )
        started.append(server)
        server.wait_ready()
        return server

    yield start
    for server in started:
        server.stop()


def test_every_answer_lands_in_the_collector_joined_with_its_request(
    collector: tuple[CollectorProcess, Settings],
    logging_predictor: Callable[[str], PredictorProcess],
    served_model: PipelineOutcome,
) -> None:
    process, settings = collector
    server = logging_predictor(f"{process.url}/")
    session = requests.Session()
    scores: dict[tuple[str, int], float] = {}
    for i in range(12):  # V1 single rows, V1 batches of 3, V2 batches of 2
        request_id = f"direct-{i}-{uuid.uuid4().hex[:8]}"
        headers = {"x-request-id": request_id}
        if i % 3 == 0:
            rows = [transaction(i)]
            answer = session.post(server.v1_url, json={"instances": rows}, headers=headers, timeout=10)
        elif i % 3 == 1:
            rows = [transaction(i), transaction(i + 100), transaction(i + 200)]
            answer = session.post(server.v1_url, json={"instances": rows}, headers=headers, timeout=10)
        else:
            rows = [transaction(i), transaction(i + 100)]
            answer = session.post(server.v2_url, json=v2_body(rows), headers=headers, timeout=10)
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-request-id"] == request_id
        body = answer.json()
        if "predictions" in body:
            values = [p["fraud_probability"] for p in body["predictions"]]
            assert {p["model_version"] for p in body["predictions"]} == {served_model.version}
        else:
            values = next(o["data"] for o in body["outputs"] if o["name"] == "fraud_probability")
            assert body["model_version"] == served_model.version
        for row, value in enumerate(values):
            scores[(request_id, row)] = float(value)

    deadline = time.monotonic() + 30  # 12 requests + 12 responses
    while metric(server, "fraud_payload_log_events_sent_total") < 24 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert metric(server, "fraud_payload_log_events_sent_total") == 24
    assert metric(server, "fraud_payload_log_events_failed_total") == 0
    assert metric(server, "fraud_payload_log_events_dropped_total") == 0

    session.post(f"{process.url}/v1/flush", timeout=60).raise_for_status()
    now = datetime.now(UTC)
    log = read_log(settings, now - timedelta(hours=1), now + timedelta(hours=1))
    joined = log[log["matched"]]
    assert len(joined) == len(scores) == 4 * 1 + 4 * 3 + 4 * 2
    assert set(zip(joined["request_id"], joined["row"], strict=True)) == set(scores)
    assert set(joined["model_version"]) == {served_model.version}
    assert set(joined["arm"]) == {"champion"}  # ce-endpoint "default": KServe's main predictor
    assert set(joined["endpoint"]) == {"default"}
    for request_id, row, score in zip(joined["request_id"], joined["row"], joined["score"], strict=True):
        assert score == pytest.approx(scores[(request_id, int(row))])
    amounts = dict(zip(zip(joined["request_id"], joined["row"], strict=True), joined["amount"], strict=True))
    assert amounts[(next(r for r, _ in scores if r.startswith("direct-1-")), 2)] == transaction(201)["amount"]


class _BlackHole:
    """A port that accepts connections and never answers: a collector stuck mid-request."""

    def __init__(self) -> None:
        self.socket = socket.socket()
        self.socket.bind((HOST, 0))
        self.socket.listen(1024)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.socket.getsockname()[1]}/"

    def close(self) -> None:
        self.socket.close()


def test_a_hung_or_dead_collector_neither_slows_nor_fails_predictions(
    logging_predictor: Callable[[str], PredictorProcess],
) -> None:
    hole = _BlackHole()
    dead_port = pick_free_ports(1, HOST)[0]  # nothing listens there
    try:
        for url in (hole.url, f"http://{HOST}:{dead_port}/"):
            server = logging_predictor(url)
            session = requests.Session()
            slowest = 0.0
            for i in range(40):
                started = time.perf_counter()
                answer = session.post(server.v1_url, json={"instances": [transaction(i)]}, timeout=10)
                slowest = max(slowest, time.perf_counter() - started)
                assert answer.status_code == 200, answer.text
            # a hung collector holds each event for the sink's 5 s timeout: an answer that waited for it would show
            assert slowest < 2.0, f"slowest answer {slowest:.2f} s with the collector at {url}"
            assert metric(server, "fraud_payload_log_events_sent_total") == 0
            if url != hole.url:
                deadline = time.monotonic() + 10
                while metric(server, "fraud_payload_log_events_failed_total") < 80 and time.monotonic() < deadline:
                    time.sleep(0.1)
                assert metric(server, "fraud_payload_log_events_failed_total") == 80
    finally:
        hole.close()
