"""Alert hygiene: k bad windows in a row fire once, a spike never pages, the first good window resolves; the
webhooks reach a real HTTP receiver in Alertmanager's format, and an unreachable one loses nothing."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from monitoring import alerts

START = datetime(2026, 12, 6, tzinfo=UTC)


class Receiver:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                outer.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                del args

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def run(pattern: str, url: str | None, k: int = 3) -> alerts.AlertState:
    state = alerts.AlertState(name="FraudModelDrift", labels={"severity": "warning"})
    for i, mark in enumerate(pattern):
        state = alerts.observe(state, mark == "x", START + timedelta(hours=i), windows=k, annotations={"summary": mark})
        state = alerts.deliver(state, url)
    return state


def test_a_one_window_spike_pages_nobody(receiver: Receiver) -> None:
    state = run("..x..x.xx..", receiver.url)
    assert receiver.bodies == []
    assert state.status == "inactive"


def test_sustained_drift_fires_once_and_resolves_once(receiver: Receiver) -> None:
    state = run("..xxxxxxx..", receiver.url)
    assert [b["status"] for b in receiver.bodies] == ["firing", "resolved"]
    firing, resolved = receiver.bodies
    assert firing["version"] == "4" and firing["receiver"] == "fraud-monitor"
    alert = firing["alerts"][0]
    assert alert["labels"] == {"alertname": "FraudModelDrift", "severity": "warning"}
    assert alert["startsAt"] == "2026-12-06T02:00:00Z"  # the first bad window, not the one that made it fire
    assert alert["endsAt"] == alerts.ZERO_TIME
    assert resolved["alerts"][0]["fingerprint"] == alert["fingerprint"]
    assert resolved["alerts"][0]["endsAt"] == "2026-12-06T09:00:00Z"
    assert state.status == "inactive" and [h["status"] for h in state.history] == ["firing", "resolved"]


def test_undelivered_notifications_wait_for_the_receiver(tmp_path: Path, receiver: Receiver) -> None:
    state = run("xxx", "http://127.0.0.1:9/unreachable")
    assert state.status == "firing" and len(state.outbox) == 1
    path = tmp_path / "alert.json"
    alerts.save(path, state)  # persisted across runs of the drift job
    state = alerts.load(path, "FraudModelDrift", {})
    state = alerts.observe(state, False, START + timedelta(hours=5), windows=3)
    state = alerts.deliver(state, receiver.url)
    assert [b["status"] for b in receiver.bodies] == ["firing", "resolved"]
    assert state.outbox == []
