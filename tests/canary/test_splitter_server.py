"""The splitter's own HTTP server at the protocol level: keep-alive, pipelining, chunked bodies, bad requests.

No model is needed for this: the upstream is the load generator's fixed-answer server (`benchmarks.loadgen
trivial-server`), so these run without the stack, in seconds. What the splitter does with real predictors is in
`test_splitter.py`.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from fraud.stack.ports import pick_free_ports
from serving.canary.splitter import Route, Target, read_route, write_route

HOST = "127.0.0.1"
BODY = b'{"instances":[{"nameOrig":"C1"}]}'


@pytest.fixture(scope="module")
def splitter_url(splitter: tuple[str, Path]) -> str:
    return splitter[0]


@pytest.fixture(scope="module")
def splitter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    upstream_port, port = pick_free_ports(2, HOST)
    work = tmp_path_factory.mktemp("splitter-server")
    route = work / "route.json"
    write_route(route, Route(Target(f"http://{HOST}:{upstream_port}", "7")))
    processes = [
        subprocess.Popen([sys.executable, "-m", "benchmarks.loadgen", "trivial-server", "--port", str(upstream_port)]),
        subprocess.Popen(
            [sys.executable, "-m", "serving.canary", "--port", str(port), "--route-file", str(route)],
            stdout=(work / "splitter.log").open("wb"),
            stderr=subprocess.STDOUT,
        ),
    ]
    url = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{url}/v2/health/live", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, (work / "splitter.log").read_text()
            time.sleep(0.2)
        yield url, route
    finally:
        for process in processes:
            process.terminate()
            process.wait(20)


def _exchange(port: int, data: bytes, answers: int) -> bytes:
    """Send raw bytes on one connection and read until ``answers`` complete responses came back."""
    with socket.create_connection((HOST, port), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        while received.count(b"HTTP/1.1 ") < answers or not received.endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


def _request(path: str, body: bytes, extra: bytes = b"") -> bytes:
    return (
        b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + extra
        + b"Content-Length: %d\r\n\r\n" % len(body) + body
    )  # fmt: skip


def test_keep_alive_and_pipelined_requests_are_answered_in_order(splitter_url: str) -> None:
    port = int(splitter_url.rsplit(":", 1)[1])
    path = "/v1/models/fraud-detector:predict"
    pipelined = b"".join(_request(path, BODY, b"x-request-id: r%d\r\n" % i) for i in range(5))
    answer = _exchange(port, pipelined, 5)
    assert answer.count(b"HTTP/1.1 200 OK") == 5
    ids = [line.split(b": ")[1] for line in answer.split(b"\r\n") if line.startswith(b"x-request-id")]
    assert ids == [b"r0", b"r1", b"r2", b"r3", b"r4"]


def test_chunked_bodies_are_read_whole(splitter_url: str) -> None:
    port = int(splitter_url.rsplit(":", 1)[1])
    half = len(BODY) // 2
    chunked = (
        b"POST /v1/models/fraud-detector:predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"x-request-id: chunky\r\n\r\n"
        + b"%x\r\n" % half + BODY[:half] + b"\r\n"
        + b"%x\r\n" % (len(BODY) - half) + BODY[half:] + b"\r\n0\r\n\r\n"
    )  # fmt: skip
    answer = _exchange(port, chunked, 1)
    assert answer.startswith(b"HTTP/1.1 200 OK") and b"x-request-id: chunky" in answer


def test_malformed_http_gets_a_400_and_the_server_lives_on(splitter_url: str) -> None:
    port = int(splitter_url.rsplit(":", 1)[1])
    assert _exchange(port, b"NOT HTTP AT ALL\r\n\r\n", 1).startswith(b"HTTP/1.1 400")
    assert requests.get(f"{splitter_url}/v2/health/live", timeout=5).status_code == 200


def test_admin_routes_and_metrics(splitter_url: str) -> None:
    route = requests.get(f"{splitter_url}/canary/route", timeout=5).json()
    assert route["champion"]["version"] == "7" and route["challenger"] is None
    refused = requests.put(f"{splitter_url}/canary/route", json={"champion": {"url": "x"}}, timeout=5)
    assert refused.status_code == 400 and "invalid route" in refused.json()["error"]
    assert requests.get(f"{splitter_url}/canary/nothing", timeout=5).status_code == 404
    metrics = requests.get(f"{splitter_url}/metrics", timeout=5)
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "canary_weight_percent 0.0" in metrics.text
    # the fixed answer carries no decision: the splitter counts it as the arm's failure, never as a score
    window = requests.post(f"{splitter_url}/canary/window", timeout=5).json()
    assert window["champion"]["scores"] == [] and all(window["champion"]["failed"])


def test_route_changes_are_kept_in_the_route_file(splitter: tuple[str, Path]) -> None:
    url, route_file = splitter
    route = requests.get(f"{url}/canary/route", timeout=5).json()
    changed = {**route, "salt": "other"}
    assert requests.put(f"{url}/canary/route", json=changed, timeout=5).json()["salt"] == "other"
    assert read_route(route_file).salt == "other"  # on disk before the answer: a restart routes the same way
    requests.put(f"{url}/canary/route", json=route, timeout=5)
    assert read_route(route_file).salt == route["salt"]
