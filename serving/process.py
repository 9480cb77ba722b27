"""Run a predictor as a child process: start it on given ports, wait until it is ready, stop it with SIGTERM.

Tests, benchmarks and (later) the local canary router all need the real server in its own process, started the
way a pod starts it (``python -m serving``), so this lives next to the server rather than in each caller::

    predictor = PredictorProcess.start(8090, 8091, ["--model_version", "3"], log_path=Path("predictor.log"))
    predictor.wait_ready()
    ...  # POST predictor.v1_url / predictor.v2_url, gRPC predictor.grpc_target
    predictor.stop()  # SIGTERM: drains in-flight requests, exit code 0

The child inherits this process's environment (``MLFLOW_TRACKING_URI``, ``FRAUD_*``) plus ``env``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import requests

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
MODEL_NAME = "fraud-detector"


def predictor_command(http_port: int, grpc_port: int, args: Sequence[str] = ()) -> list[str]:
    """The container entrypoint's command line for the given ports."""
    return [sys.executable, "-m", "serving", "--http_port", str(http_port), "--grpc_port", str(grpc_port), *args]


@dataclass
class PredictorProcess:
    """A predictor child process on loopback ports, with its log file (one JSON record per line)."""

    process: subprocess.Popen[bytes]
    http_port: int
    grpc_port: int
    log_path: Path
    name: str = "predictor"
    model_name: str = MODEL_NAME

    @classmethod
    def launch(
        cls,
        command: Sequence[str],
        http_port: int,
        grpc_port: int,
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        name: str = "predictor",
    ) -> PredictorProcess:
        """Start ``command`` (which must serve on ``http_port``/``grpc_port``), logging to ``log_path``."""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                list(command),
                cwd=cwd,
                env={**os.environ, **(env or {})},
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        log.info("started %s (pid %d) on REST %d, gRPC %d", name, process.pid, http_port, grpc_port)
        return cls(process, http_port, grpc_port, log_path, name)

    @classmethod
    def start(
        cls,
        http_port: int,
        grpc_port: int,
        args: Sequence[str] = (),
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        name: str = "predictor",
    ) -> PredictorProcess:
        """Start ``python -m serving`` with extra ``args`` (e.g. ``["--model_version", "3"]``)."""
        return cls.launch(
            predictor_command(http_port, grpc_port, args), http_port, grpc_port, log_path=log_path, env=env, name=name
        )

    # --- addresses -----------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.http_port}"

    @property
    def v1_url(self) -> str:
        return f"{self.url}/v1/models/{self.model_name}:predict"

    @property
    def v2_url(self) -> str:
        return f"{self.url}/v2/models/{self.model_name}/infer"

    @property
    def grpc_target(self) -> str:
        return f"{LOOPBACK}:{self.grpc_port}"

    # --- state ---------------------------------------------------------------------------------------------
    def alive(self) -> bool:
        """The process runs and answers its liveness route."""
        if self.process.poll() is not None:
            return False
        try:
            return requests.get(f"{self.url}/v2/health/live", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def ready(self) -> bool:
        """The model is loaded (``/v2/health/ready`` is 200)."""
        try:
            return requests.get(f"{self.url}/v2/health/ready", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def wait_live(self, timeout: float = 300.0) -> None:
        self._wait(self.alive, timeout, "live")

    def wait_ready(self, timeout: float = 600.0) -> None:
        """Wait until ready; raises with the log's tail if the process exits or the time runs out.

        The default is generous: on a loaded shared machine importing the libraries alone has taken minutes, and
        a healthy predictor returns as soon as it is ready.
        """
        self._wait(self.ready, timeout, "ready")

    def _wait(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
            if check():
                return
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} not {what} after {timeout:.0f} s:\n{self.log_tail()}")

    # --- logs ----------------------------------------------------------------------------------------------
    def log_records(self) -> list[dict[str, Any]]:
        """The JSON records of the log so far (non-JSON lines, e.g. a crash before logging is set up, skipped)."""
        records: list[dict[str, Any]] = []
        if not self.log_path.is_file():
            return records
        for line in self.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            with contextlib.suppress(orjson.JSONDecodeError):
                record = orjson.loads(line)
                if isinstance(record, dict):
                    records.append(record)
        return records

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.is_file():
            return "(no log)"
        return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])

    # --- stop ----------------------------------------------------------------------------------------------
    def stop(self, timeout: float = 40.0) -> int:
        """SIGTERM (graceful drain), then SIGKILL after ``timeout``; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0f s; killing it", self.name, timeout)
                self.process.kill()
                self.process.wait(10)
        return int(self.process.returncode)
