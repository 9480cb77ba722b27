"""The serving benchmark's load generator: open loop keeps its schedule and shows queueing; closed loop does not.

Each test starts `benchmarks.loadgen`'s trivial server in a subprocess, blocking ``service_ms`` per request like a
single-threaded CPU-bound server (capacity = 1000 / service_ms requests per second), and runs the generator in
this process.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from benchmarks.loadgen import Job, Result, http_request, percentile, read_requests, run_job, write_requests
from fraud.stack.ports import pick_free_ports

HOST = "127.0.0.1"
ServerFactory = Callable[[float], int]


@pytest.fixture
def trivial_server(tmp_path: Path) -> Iterator[ServerFactory]:
    started: list[subprocess.Popen[bytes]] = []

    def start(service_ms: float) -> int:
        (port,) = pick_free_ports(1, HOST)
        command = [sys.executable, "-m", "benchmarks.loadgen", "trivial-server", "--port", str(port)]
        process = subprocess.Popen(
            [*command, "--service-ms", str(service_ms)],
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / f"trivial-{port}.log").open("wb"),
        )
        started.append(process)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((HOST, port), timeout=0.5):
                    return port
            except OSError:
                time.sleep(0.05)
        raise AssertionError("the trivial server did not start")

    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=10)


def _job(tmp_path: Path, port: int, **values: object) -> Job:
    path = tmp_path / "requests.bin"
    write_requests(
        path, [http_request(HOST, port, "/v1/models/m:predict", b'{"instances":[{"i":%d}]}' % i) for i in range(7)]
    )
    return Job(host=HOST, port=port, requests_file=str(path), **values)  # type: ignore[arg-type]


def test_request_file_round_trip(tmp_path: Path) -> None:
    requests = [http_request(HOST, 1, "/", b"x" * n) for n in (0, 1, 70_000)]
    write_requests(tmp_path / "r.bin", requests)
    assert read_requests(tmp_path / "r.bin") == requests
    assert requests[1].endswith(b"\r\nContent-Length: 1\r\nConnection: keep-alive\r\n\r\nx")


def test_percentile_is_nearest_rank() -> None:
    ranked = [float(v) for v in range(1, 101)]
    assert percentile(ranked, 50) == 50.0
    assert percentile(ranked, 99) == 99.0
    assert percentile([1.0, float("inf")], 99) == float("inf")


def test_open_loop_keeps_the_schedule_below_capacity(trivial_server: ServerFactory, tmp_path: Path) -> None:
    port = trivial_server(2.0)  # capacity 500/s
    result = run_job(_job(tmp_path, port, mode="open", rate=100.0, warmup=0.5, duration=2.0))
    assert result.failures == 0
    assert result.due == 200
    assert result.ok == 200
    assert 95 <= result.achieved_rate <= 105
    assert result.latency_ms.p50 >= 2.0  # never less than the service time


def test_open_loop_shows_queueing_that_closed_loop_hides(trivial_server: ServerFactory, tmp_path: Path) -> None:
    """Offered 2× capacity: latency from the scheduled time grows with the queue; a closed loop sees only the
    service time. That difference is coordinated omission."""
    port = trivial_server(10.0)  # capacity 100/s
    overload: Result = run_job(_job(tmp_path, port, mode="open", rate=200.0, duration=2.0, timeout=5.0))
    assert overload.achieved_rate < 130
    assert overload.latency_ms.p99 > 500  # ~1 s of backlog by the end of the window

    closed = run_job(_job(tmp_path, port, mode="closed", connections=1, duration=2.0))
    assert closed.failures == 0
    assert closed.achieved_rate <= 105  # one connection cannot beat the service time; how close it gets is load
    assert closed.latency_ms.p50 * 10 < overload.latency_ms.p50  # what the closed loop hides


def test_timeouts_count_as_infinitely_slow(trivial_server: ServerFactory, tmp_path: Path) -> None:
    port = trivial_server(50.0)  # capacity 20/s
    result = run_job(_job(tmp_path, port, mode="open", rate=100.0, duration=1.0, timeout=0.3))
    assert not result.aborted
    assert result.timeouts > result.due // 2
    assert result.ok + result.timeouts == result.due
    assert result.latency_ms.p99 == float("inf")


def test_a_probe_that_falls_behind_stops_early(trivial_server: ServerFactory, tmp_path: Path) -> None:
    port = trivial_server(50.0)
    started = time.monotonic()
    result = run_job(_job(tmp_path, port, mode="open", rate=200.0, duration=10.0, timeout=5.0, abort_backlog=0.5))
    assert result.aborted
    assert time.monotonic() - started < 8.0


def test_connection_refused_is_an_error_not_a_hang(tmp_path: Path) -> None:
    (port,) = pick_free_ports(1, HOST)
    result = run_job(_job(tmp_path, port, mode="open", rate=50.0, duration=0.5, timeout=0.5))
    assert result.ok == 0
    assert result.failures == result.due
