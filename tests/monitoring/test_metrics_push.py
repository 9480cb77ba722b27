"""The drift job's metrics reach Prometheus through a Pushgateway when FRAUD_MONITOR_PUSHGATEWAY_URL is set (what
the chart's drift CronJob does): each window replaces the job's group, and a gateway that is down or refuses the push
costs the metrics of that window, never the verdict.

The gateway is a real HTTP server on 127.0.0.1 that records what it is sent and answers as a Pushgateway does.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from fraud.cli.monitor import _record
from fraud.settings import Settings
from fraud.stack.ports import pick_free_ports
from monitoring import metrics
from monitoring.drift import DriftResult, detect
from monitoring.window import Window
from tests.monitoring.conftest import World, sample


@dataclass
class Gateway:
    url: str
    status: int = 200
    received: list[tuple[str, str, str]] = field(default_factory=list)
    """(method, path, body) of every request."""


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    state = Gateway(url=f"http://127.0.0.1:{server.server_address[1]}")

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            state.received.append((self.command, self.path, self.rfile.read(length).decode()))
            self.send_response(state.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the test reads what was received instead."""

    server.RequestHandlerClass = Handler
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def _window(world: World) -> tuple[Window, DriftResult]:
    frame = sample(world.month(12), 2_000, 0)
    return Window(frame, "test window"), detect(frame, world.reference)


def test_each_window_replaces_the_job_group_on_the_gateway(world: World, gateway: Gateway, tmp_path: Path) -> None:
    window, result = _window(world)
    settings = Settings(home=tmp_path, monitor_pushgateway_url=gateway.url)
    outcome = _record(settings, result, window, datetime.now(UTC))
    assert outcome["pushed_to"] == gateway.url
    ((method, path, body),) = gateway.received
    assert (method, path) == ("PUT", f"/metrics/job/{metrics.PUSH_JOB}")
    assert 'fraud_drift_window{version="1"}' in body
    assert "fraud_drift_statistic{" in body and "fraud_decision_rate{" in body
    # the same text also lands in the textfile next to the verdict
    assert 'fraud_drift_window{version="1"}' in Path(outcome["metrics"]).read_text()


@pytest.mark.parametrize("failure", ["refused", "down"])
def test_a_failed_push_keeps_the_verdict(world: World, gateway: Gateway, tmp_path: Path, failure: str) -> None:
    window, result = _window(world)
    if failure == "refused":
        gateway.status = 500
        url = gateway.url
    else:
        url = f"http://127.0.0.1:{pick_free_ports(1, '127.0.0.1')[0]}"  # nothing listens there
    settings = Settings(home=tmp_path, monitor_pushgateway_url=url)
    outcome = _record(settings, result, window, datetime.now(UTC))
    assert outcome["pushed_to"] is None
    assert (tmp_path.resolve() / "monitor" / "last_drift.json").is_file()
    assert outcome["status"] in {"inactive", "pending"}  # one window never fires (monitor_alert_windows = 3)


def test_nothing_is_pushed_without_a_gateway(world: World, gateway: Gateway, tmp_path: Path) -> None:
    window, result = _window(world)
    outcome = _record(Settings(home=tmp_path), result, window, datetime.now(UTC))
    assert outcome["pushed_to"] is None and gateway.received == []
