"""The real predictor process (`fraudctl serve`) answering V1, V2 REST and V2 gRPC with the pipeline's version."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import pytest
import requests
from kserve import InferenceGRPCClient, InferInput, InferRequest
from mlflow.tracking import MlflowClient

from fraud.settings import Settings
from fraud.stack.ports import listening_addresses
from pipelines.runner import PipelineOutcome
from serving.process import PredictorProcess
from serving.validation import EXAMPLE_TRANSACTION as TRANSACTION

pytestmark = [pytest.mark.stack, pytest.mark.slow]

DECISIONS = {"allow", "review", "block"}
V2_TYPES = {"step": "INT64", "type": "BYTES", "amount": "FP64", "nameOrig": "BYTES", "nameDest": "BYTES"}


def transactions(n: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    kinds = ["CASH_IN", "CASH_OUT", "DEBIT", "PAYMENT", "TRANSFER"]
    return [
        {
            **TRANSACTION,
            "step": int(rng.integers(1, 744)),
            "type": kinds[int(rng.integers(0, 5))],
            "amount": float(np.round(rng.lognormal(10, 2), 2)),
        }
        for _ in range(n)
    ]


def v2_body(rows: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": name, "shape": [len(rows)], "datatype": datatype, "data": [row[name] for row in rows]}
            for name, datatype in V2_TYPES.items()
        ],
        **extra,
    }


def assert_prediction(prediction: dict[str, Any], version: str) -> None:
    assert set(prediction) == {"fraud_probability", "decision", "model_version", "reasons"}
    assert 0.0 <= prediction["fraud_probability"] <= 1.0
    assert prediction["decision"] in DECISIONS
    assert prediction["model_version"] == version
    assert len(prediction["reasons"]) <= 3
    contributions = [r["contribution"] for r in prediction["reasons"]]
    assert all(c > 0 for c in contributions)
    assert contributions == sorted(contributions, reverse=True)
    for reason in prediction["reasons"]:
        assert set(reason) == {"reason", "feature", "contribution"}
        assert not re.fullmatch(r"f_?\d+", reason["reason"])


def test_v1_single_transaction(server: PredictorProcess, served_model: PipelineOutcome) -> None:
    response = requests.post(server.v1_url, json={"instances": [TRANSACTION]}, timeout=10)
    assert response.status_code == 200, response.text
    (prediction,) = response.json()["predictions"]
    assert_prediction(prediction, served_model.version)
    assert prediction["reasons"], "a 03 h TRANSFER of 181,000 has reasons"


def test_the_served_version_is_the_alias_target(stack: Settings, server: PredictorProcess) -> None:
    target = MlflowClient(stack.tracking_uri).get_model_version_by_alias(stack.model_name, "serving-test").version
    response = requests.post(server.v1_url, json={"instances": [TRANSACTION]}, timeout=10)
    assert response.json()["predictions"][0]["model_version"] == target
    metadata = requests.get(f"{server.url}/v2/models/fraud-detector", timeout=10).json()
    assert {i["name"] for i in metadata["inputs"]} == {"step", "type", "amount", "nameOrig", "nameDest"}
    assert [o["name"] for o in metadata["outputs"]] == ["fraud_probability", "decision", "model_version", "reasons"]


def test_v1_batch_at_the_maximum_size(server: PredictorProcess, served_model: PipelineOutcome) -> None:
    rows = transactions(1000)
    response = requests.post(server.v1_url, json={"instances": rows}, timeout=60)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert len(predictions) == 1000
    for prediction in predictions[:50]:
        assert_prediction(prediction, served_model.version)
    # the same transaction scores the same alone and inside a batch
    alone = requests.post(server.v1_url, json={"instances": [rows[17]]}, timeout=10).json()["predictions"][0]
    assert alone["fraud_probability"] == predictions[17]["fraud_probability"]


def test_reasons_can_be_limited_to_flagged_transactions_or_skipped(server: PredictorProcess) -> None:
    rows = transactions(200, seed=3)
    full = requests.post(server.v1_url, json={"instances": rows}, timeout=30).json()["predictions"]
    flagged = requests.post(
        server.v1_url, json={"instances": rows, "parameters": {"reasons": "flagged"}}, timeout=30
    ).json()["predictions"]
    none = requests.post(server.v1_url, json={"instances": rows, "parameters": {"reasons": "none"}}, timeout=30).json()
    for a, b in zip(full, flagged, strict=True):
        assert a["fraud_probability"] == b["fraud_probability"]
        assert b["reasons"] == (a["reasons"] if a["decision"] != "allow" else [])
    assert all(p["reasons"] == [] for p in none["predictions"])


def test_v2_rest_batch(server: PredictorProcess, served_model: PipelineOutcome) -> None:
    rows = transactions(25, seed=1)
    response = requests.post(server.v2_url, json=v2_body(rows, id="req-42"), timeout=30)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["id"] == "req-42"
    assert answer["model_version"] == served_model.version
    outputs = {o["name"]: o for o in answer["outputs"]}
    assert {name: o["datatype"] for name, o in outputs.items()} == {
        "fraud_probability": "FP64",
        "decision": "BYTES",
        "model_version": "BYTES",
        "reasons": "BYTES",
    }
    assert all(o["shape"] == [25] for o in outputs.values())
    assert set(outputs["decision"]["data"]) <= DECISIONS
    assert set(outputs["model_version"]["data"]) == {served_model.version}
    reasons = [orjson.loads(r) for r in outputs["reasons"]["data"]]  # one JSON list per transaction
    assert all(isinstance(r, list) and len(r) <= 3 for r in reasons)
    v1 = requests.post(server.v1_url, json={"instances": rows}, timeout=30).json()["predictions"]
    assert outputs["fraud_probability"]["data"] == [p["fraud_probability"] for p in v1]
    assert reasons == [p["reasons"] for p in v1]


def test_v2_without_an_id_gets_one_and_can_ask_for_some_outputs(server: PredictorProcess) -> None:
    body = v2_body(transactions(2), outputs=[{"name": "decision"}, {"name": "fraud_probability"}])
    response = requests.post(server.v2_url, json=body, headers={"x-request-id": "trace-7"}, timeout=10)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["id"] == "trace-7"
    assert [o["name"] for o in answer["outputs"]] == ["decision", "fraud_probability"]
    assert response.headers["x-request-id"] == "trace-7"


def _grpc_inputs(rows: list[dict[str, Any]]) -> list[InferInput]:
    inputs = []
    for name, datatype in V2_TYPES.items():
        tensor = InferInput(name, [len(rows)], datatype)
        values = np.array([row[name] for row in rows], dtype=object if datatype == "BYTES" else None)
        tensor.set_data_from_numpy(values, binary_data=False)
        inputs.append(tensor)
    return inputs


def test_v2_grpc(server: PredictorProcess, served_model: PipelineOutcome) -> None:
    rows = transactions(5, seed=2)

    async def call() -> tuple[Any, str, bool]:
        client = InferenceGRPCClient(server.grpc_target, timeout=30)
        try:
            ready = await client.is_model_ready("fraud-detector")
            answer = await client.infer(InferRequest("fraud-detector", _grpc_inputs(rows), request_id="g-1"))
            bad = InferRequest("fraud-detector", _grpc_inputs(rows)[:2], request_id="g-2")
            try:
                await client.infer(bad)
                error = "no error"
            except Exception as exc:  # the client re-raises grpc's AioRpcError
                error = f"{exc.code().name}: {exc.details()}"  # type: ignore[attr-defined]
            return answer, error, ready
        finally:
            await client.close()

    answer, error, ready = asyncio.run(call())
    assert ready
    assert answer.id == "g-1"
    outputs = {o.name: o.as_numpy() for o in answer.outputs}
    assert [v.decode() for v in outputs["model_version"]] == [served_model.version] * 5
    v1 = requests.post(server.v1_url, json={"instances": rows}, timeout=30).json()["predictions"]
    assert outputs["fraud_probability"].tolist() == [p["fraud_probability"] for p in v1]
    assert [v.decode() for v in outputs["decision"]] == [p["decision"] for p in v1]
    assert error == "INVALID_ARGUMENT: input 'amount': required input is missing"

    # one latency line per RPC, with its gRPC status
    def infer_calls(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            r
            for r in records
            if r.get("event") == "request" and r.get("protocol") == "grpc" and r["path"].endswith("/ModelInfer")
        ]

    calls = infer_calls(_records_when(server, lambda rs: len(infer_calls(rs)) >= 2))
    assert {"OK", "INVALID_ARGUMENT"} <= {r["status"] for r in calls}
    assert any(r["status"] == "OK" and r.get("rows") == 5 and r["duration_ms"] > 0 for r in calls)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"instances": [{**TRANSACTION, "type": "WIRE"}]}, "instance 0, field 'type': unknown transaction type 'WIRE'"),
        ({"instances": [TRANSACTION, {**TRANSACTION, "amount": -1}]}, "instance 1, field 'amount': must be >= 0"),
        (
            {"instances": [{**TRANSACTION, "amount": "12.5"}]},
            "instance 0, field 'amount': expected a number, got string",
        ),
        ({"instances": [{**TRANSACTION, "step": True}]}, "instance 0, field 'step': expected an integer, got boolean"),
        (
            {"instances": [{k: v for k, v in TRANSACTION.items() if k != "nameDest"}]},
            "field 'nameDest': required field",
        ),
        ({"instances": []}, "field 'instances': empty batch"),
        ({"instances": [TRANSACTION] * 1001}, "batch of 1,001 transactions exceeds the maximum of 1,000"),
        ({"instances": "all"}, "field 'instances': must be a list"),
        ([TRANSACTION], "request body must be a JSON object"),
        (b'{"instances": [{"step": 1,', "malformed JSON"),
        (b'{"instances": [{"amount": 1e999}]}', "malformed JSON"),
    ],
)
def test_v1_bad_input_is_a_400_naming_the_problem(server: PredictorProcess, body: Any, message: str) -> None:
    if isinstance(body, bytes):
        response = requests.post(server.v1_url, data=body, headers={"content-type": "application/json"}, timeout=10)
    else:
        response = requests.post(server.v1_url, json=body, timeout=10)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"inputs": [', "malformed JSON"),
        (b"[1, 2]", "body: Input should be a valid dictionary"),
        (b'{"inputs": [{"name": "step", "shape": [1], "datatype": "INT64"}]}', "inputs[0].data: Field required"),
        (b'{"inputs": [{"name": "step", "shape": "x", "datatype": "INT64", "data": [1]}]}', "inputs[0].shape"),
        (orjson.dumps(v2_body(transactions(2)) | {"inputs": []}), "field 'inputs': no inputs"),
    ],
)
def test_v2_malformed_bodies_are_400_not_422(server: PredictorProcess, body: bytes, message: str) -> None:
    response = requests.post(server.v2_url, data=body, headers={"content-type": "application/json"}, timeout=10)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


def test_v2_bad_tensors_name_the_input_and_index(server: PredictorProcess) -> None:
    body = v2_body(transactions(3))
    body["inputs"][2]["data"][2] = -3.0  # amount of the third transaction
    response = requests.post(server.v2_url, json=body, timeout=10)
    assert response.status_code == 400
    assert response.json() == {
        "error": "instance 2, input 'amount': must be >= 0; got -3.0",
        "field": "amount",
        "instance": 2,
    }
    body = v2_body(transactions(3))
    body["inputs"][0]["shape"] = [2]  # step claims two transactions, the others three
    response = requests.post(server.v2_url, json=body, timeout=10)
    assert response.status_code == 400
    assert "shape says 2 values but 'data' holds 3" in response.json()["error"]
    body = v2_body(transactions(3))
    body["inputs"][2]["datatype"] = "INT64"
    assert "datatype INT64 is not accepted" in requests.post(server.v2_url, json=body, timeout=10).json()["error"]
    body = v2_body(transactions(3))
    body["inputs"][0] = {"name": "step", "shape": [2], "datatype": "INT64", "data": [1, 2]}
    response = requests.post(server.v2_url, json=body, timeout=10)
    assert "must all hold the same number of transactions" in response.json()["error"]


def test_v2_binary_payload_garbage_is_a_400(server: PredictorProcess) -> None:
    headers = {"inference-header-content-length": "12", "content-type": "application/octet-stream"}
    response = requests.post(server.v2_url, data=b'{"inputs": 1}garbage', headers=headers, timeout=10)
    assert response.status_code == 400, response.text
    response = requests.post(
        server.v2_url, data=b'{"outputs": []}', headers={**headers, "inference-header-content-length": "15"}, timeout=10
    )
    assert response.status_code == 400, response.text


def test_oversized_bodies_are_refused_before_reading(server: PredictorProcess) -> None:
    response = requests.post(server.v1_url, data=b" " * (9 * 1024 * 1024), timeout=30)
    assert response.status_code == 413
    assert "FRAUD_SERVE_MAX_BODY_BYTES" in response.json()["error"]


def test_the_server_stays_up_after_bad_input(server: PredictorProcess) -> None:
    for body in (b"\x00\xff", b"{", b"null", b'{"instances": [null]}'):
        assert requests.post(server.v1_url, data=body, timeout=10).status_code == 400
    assert requests.post(server.v1_url, json={"instances": [TRANSACTION]}, timeout=10).status_code == 200


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and line.split(" ")[0] != name:
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_count_decisions_scores_and_rejections(server: PredictorProcess, served_model: PipelineOutcome) -> None:
    version = served_model.version
    before = requests.get(f"{server.url}/metrics", timeout=10).text
    predictions = requests.post(server.v1_url, json={"instances": transactions(40, seed=9)}, timeout=30).json()[
        "predictions"
    ]
    requests.post(server.v1_url, json={"instances": []}, timeout=10)
    after = requests.get(f"{server.url}/metrics", timeout=10).text
    for decision in DECISIONS:
        expected = sum(p["decision"] == decision for p in predictions)
        moved = _metric(after, "fraud_decisions_total", decision=decision, model_version=version) - _metric(
            before, "fraud_decisions_total", decision=decision, model_version=version
        )
        assert moved == expected, decision
    count = "fraud_score_count"
    assert _metric(after, count, model_version=version) - _metric(before, count, model_version=version) == 40
    assert _metric(after, "fraud_score_sum", model_version=version) - _metric(
        before, "fraud_score_sum", model_version=version
    ) == pytest.approx(sum(p["fraud_probability"] for p in predictions))
    assert 'fraud_score_bucket{le="+Inf"' in after
    assert _metric(after, "fraud_rejected_requests_total", protocol="v1") > _metric(
        before, "fraud_rejected_requests_total", protocol="v1"
    )
    assert "request_predict_seconds" in after, "KServe's own latency histograms stay"


def test_one_json_log_line_per_request_with_its_id(server: PredictorProcess) -> None:
    requests.post(server.v1_url, json={"instances": [TRANSACTION]}, headers={"x-request-id": "log-check-1"}, timeout=10)
    requests.post(server.v1_url, json={"instances": []}, headers={"x-request-id": "log-check-2"}, timeout=10)
    # the line is written once the answer has been sent: wait for both
    records = _records_when(
        server,
        lambda rs: {"log-check-1", "log-check-2"} <= {r.get("request_id") for r in rs if r.get("event") == "request"},
    )
    lines = [r for r in records if r.get("event") == "request" and r.get("request_id") == "log-check-1"]
    assert len(lines) == 1
    (line,) = lines
    assert line["status"] == 200
    assert line["rows"] == 1
    assert line["duration_ms"] > 0
    assert line["path"] == "/v1/models/fraud-detector:predict"
    (bad,) = [r for r in records if r.get("event") == "request" and r.get("request_id") == "log-check-2"]
    assert bad["status"] == 400
    assert "empty batch" in bad["error"]
    assert not [r for r in records if "Traceback" in str(r.get("exc", ""))], "bad input logs no traceback"


def _records_when(
    server: PredictorProcess, done: Callable[[list[dict[str, Any]]], bool], timeout: float = 10.0
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        records = server.log_records()
        if done(records) or time.monotonic() > deadline:
            return records
        time.sleep(0.05)


def test_binds_loopback_only(server: PredictorProcess) -> None:
    addresses = listening_addresses([server.process.pid])
    assert {port for _, port in addresses} >= {server.http_port, server.grpc_port}
    # gRPC's dual-stack socket reports the IPv4 loopback in its IPv6-mapped form
    assert {address.removeprefix("::ffff:") for address, _ in addresses} == {"127.0.0.1"}
