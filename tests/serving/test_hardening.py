"""Hostile and broken clients: deep nesting, invalid UTF-8, endless chunked bodies, disconnects, slow uploads.

Each case was found by probing the running predictor (issue 13, item 8); every answer is a 4xx naming the
problem on both serving paths (fast, and KServe's public handlers) and on gRPC, never a 500, and the server stays
up and unbloated.
"""

from __future__ import annotations

import select
import socket
import time
from typing import Any

import grpc
import orjson
import pytest
import requests
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

from serving.process import LOOPBACK, PredictorProcess
from serving.validation import EXAMPLE_TRANSACTION as TRANSACTION

pytestmark = [pytest.mark.stack, pytest.mark.slow]

V1 = "/v1/models/fraud-detector:predict"
V2 = "/v2/models/fraud-detector/infer"
DEEP = "nested too deeply"


def _nested(levels: int) -> bytes:
    return b'{"a":' * levels + b"1" + b"}" * levels


def _v2_tensor(name: str, datatype: str, data: bytes) -> bytes:
    return b'{"name":"%s","datatype":"%s","shape":[1],"data":[%s]}' % (name.encode(), datatype.encode(), data)


BODIES: dict[str, tuple[str, bytes, str]] = {
    "v1 instances nested 10,000 deep": (V1, b'{"instances":[{"step":3,"x":' + _nested(10_000) + b"}]}", DEEP),
    "v1 instances as arrays 10,000 deep": (V1, b'{"instances":' + b"[" * 10_000 + b"]" * 10_000 + b"}", DEEP),
    "v1 parameters nested 1,000 deep": (
        V1,
        orjson.dumps({"instances": [TRANSACTION]})[:-1] + b',"parameters":{"a":' + _nested(1000) + b"}}",
        "'parameters.a': must be a string, number, boolean or null",
    ),
    "v2 inputs nested 10,000 deep": (V2, b'{"inputs":[' + _v2_tensor("step", "INT64", _nested(10_000)) + b"]}", DEEP),
    "v2 parameters nested 1,000 deep": (
        V2,
        b'{"inputs":[' + _v2_tensor("step", "INT64", b"3") + b'],"parameters":{"a":' + _nested(1000) + b"}}",
        DEEP,
    ),
    "v1 string with invalid UTF-8": (
        V1,
        orjson.dumps({"instances": [TRANSACTION]}).replace(b'"TRANSFER"', b'"TRANS\xff\xfeFER"'),
        "not valid UTF-8: byte 0xff at offset",
    ),
    "v2 string with invalid UTF-8": (
        V2,
        b'{"inputs":[' + _v2_tensor("nameOrig", "BYTES", b'"C\xc3"') + b"]}",
        "not valid UTF-8: byte 0xc3 at offset",
    ),
}


@pytest.fixture(params=["fast", "public"])
def either(request: pytest.FixtureRequest) -> PredictorProcess:
    """The predictor on its fast path, then the one serving through KServe's public handlers."""
    name = "server" if request.param == "fast" else "public_server"
    server: PredictorProcess = request.getfixturevalue(name)
    return server


@pytest.mark.parametrize("case", list(BODIES))
def test_hostile_json_is_a_400_naming_the_problem(either: PredictorProcess, case: str) -> None:
    path, body, problem = BODIES[case]
    response = requests.post(either.url + path, data=body, headers={"content-type": "application/json"}, timeout=30)
    assert response.status_code == 400, response.text[:300]
    assert problem in response.json()["error"]


def _grpc_error(server: PredictorProcess, raw: bytes) -> grpc.RpcError:
    with grpc.insecure_channel(server.grpc_target) as channel:
        call = channel.unary_unary(
            "/inference.GRPCInferenceService/ModelInfer",
            request_serializer=lambda message: message,
            response_deserializer=lambda message: message,
        )
        with pytest.raises(grpc.RpcError) as raised:
            call(raw, timeout=30)
    error: grpc.RpcError = raised.value
    return error


def _grpc_request(name_orig: bytes, request_id: str = "") -> pb.ModelInferRequest:
    def tensor(name: str, datatype: str, **contents: Any) -> pb.ModelInferRequest.InferInputTensor:
        return pb.ModelInferRequest.InferInputTensor(
            name=name, datatype=datatype, shape=[1], contents=pb.InferTensorContents(**contents)
        )

    return pb.ModelInferRequest(
        model_name="fraud-detector",
        id=request_id,
        inputs=[
            tensor("step", "INT64", int64_contents=[3]),
            tensor("type", "BYTES", bytes_contents=[b"TRANSFER"]),
            tensor("amount", "FP64", fp64_contents=[100.0]),
            tensor("nameOrig", "BYTES", bytes_contents=[name_orig]),
            tensor("nameDest", "BYTES", bytes_contents=[b"C2"]),
            tensor("oldbalanceOrg", "FP64", fp64_contents=[100.0]),
            tensor("oldbalanceDest", "FP64", fp64_contents=[0.0]),
        ],
    )


def test_grpc_invalid_utf8_is_invalid_argument_naming_it(either: PredictorProcess) -> None:
    with grpc.insecure_channel(either.grpc_target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            stub.ModelInfer(_grpc_request(b"C\xff\xfe"), timeout=30)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "'nameOrig': is not valid UTF-8" in str(raised.value.details())
    # a protobuf string field (the request id) with invalid UTF-8 does not even parse
    raw = bytearray(_grpc_request(b"C1", request_id="ZZZZ").SerializeToString())
    at = raw.index(b"ZZZZ")
    raw[at : at + 2] = b"\xff\xfe"
    error = _grpc_error(either, bytes(raw))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert "must be valid UTF-8" in str(error.details())


def _open(server: PredictorProcess, headers: str) -> socket.socket:
    connection = socket.create_connection((LOOPBACK, server.http_port), timeout=30)
    head = f"POST {V1} HTTP/1.1\r\nHost: predictor\r\nContent-Type: application/json\r\n{headers}\r\n"
    connection.sendall(head.encode())
    return connection


def _read_answer(connection: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (these answers all close it)."""
    answer = b""
    connection.settimeout(20)
    try:
        while chunk := connection.recv(65536):
            answer += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return answer


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def test_a_chunked_body_is_capped_as_it_streams_in(server: PredictorProcess) -> None:
    # given a client streaming a 64 MiB chunked body (8 × the 8 MiB cap)
    connection = _open(server, "Transfer-Encoding: chunked\r\n")
    chunk = b"[" * 65536
    sent, limit, answer = 0, 64 << 20, b""
    try:
        while sent < limit and not select.select([connection], [], [], 0)[0]:
            connection.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered and closed while we were sending: its answer is waiting
    try:
        answer = _read_answer(connection)
    finally:
        connection.close()
    # then the server answers 413 once the cap is passed, long before the client is done
    assert answer, "no answer"
    assert _status(answer) == 413, answer[:200]
    assert b"FRAUD_SERVE_MAX_BODY_BYTES" in answer
    assert sent < limit / 2, f"the server let {sent:,} bytes in before answering"
    assert requests.post(server.v1_url, json={"instances": [TRANSACTION]}, timeout=10).status_code == 200


def _request_line(server: PredictorProcess, request_id: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for record in server.log_records():
            if record.get("event") == "request" and record.get("request_id") == request_id:
                return record
        time.sleep(0.2)
    raise AssertionError(f"no request line for {request_id}")


def test_a_client_gone_mid_body_is_not_a_server_error(server: PredictorProcess) -> None:
    connection = _open(server, "Content-Length: 10000\r\nX-Request-Id: gone-mid-body\r\n")
    connection.sendall(b'{"instances": [' * 100)
    time.sleep(0.5)  # the server is waiting for the rest
    connection.close()
    line = _request_line(server, "gone-mid-body")
    assert line["status"] == 499, line
    assert line["level"] == "INFO", line
    assert "client disconnected after" in line["error"]
    assert not [r for r in server.log_records() if r.get("request_id") == "gone-mid-body" and r["level"] == "ERROR"]


def test_a_slow_client_is_cut_off_after_the_read_timeout(public_server: PredictorProcess) -> None:
    # given a predictor with FRAUD_SERVE_READ_TIMEOUT=2 and a client that sends 15 bytes of a 1,000-byte body
    connection = _open(public_server, "Content-Length: 1000\r\nX-Request-Id: slow-client\r\n")
    connection.sendall(b'{"instances": [')
    started = time.monotonic()
    try:
        answer = _read_answer(connection)
    finally:
        connection.close()
    # then it answers 408 after about 2 s and closes the connection
    assert _status(answer) == 408, answer[:200]
    assert b"FRAUD_SERVE_READ_TIMEOUT" in answer and b"connection: close" in answer.lower()
    assert 1.5 < time.monotonic() - started < 10
    assert _request_line(public_server, "slow-client")["status"] == 408
