"""Run a collector as a child process (tests, benchmarks): start, wait until healthy, stop or kill it.

collector = CollectorProcess.start(settings, port=18095, wal_dir=tmp / "wal", log_path=tmp / "collector.log")
collector.wait_ready()
...  # POST collector.url
collector.kill()  # SIGKILL, as a crash would; start again on the same wal_dir to recover
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import requests

from fraud.settings import Settings


def collector_env(
    settings: Settings, port: int, wal_dir: Path, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment a collector child needs: the store's address and keys, its port and its log directory."""
    env = {
        **os.environ,
        **settings.server_env(),
        "FRAUD_COLLECTOR_PORT": str(port),
        "FRAUD_COLLECTOR_WAL_DIR": str(wal_dir),
        "FRAUD_MONITOR_LOG_BUCKET": settings.monitor_log_bucket,
        "FRAUD_STACK_HOST": settings.stack_host,
    }
    env.update(extra or {})
    return env


@dataclass
class CollectorProcess:
    process: subprocess.Popen[bytes]
    host: str
    port: int
    wal_dir: Path
    log_path: Path

    @classmethod
    def start(
        cls,
        settings: Settings,
        *,
        port: int,
        wal_dir: Path,
        log_path: Path,
        env: Mapping[str, str] | None = None,
    ) -> CollectorProcess:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "monitoring.collector"],
                env=collector_env(settings, port, wal_dir, env),
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        return cls(process, settings.stack_host, port, wal_dir, log_path)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def wait_ready(self, timeout: float = 60.0) -> float:
        """Seconds until /healthz answered (the write-ahead log is replayed by then)."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"collector exited with code {self.process.returncode}; see {self.log_path}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return time.monotonic() - started
            time.sleep(0.05)
        raise TimeoutError(f"collector not healthy after {timeout} s; see {self.log_path}")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (flushes what is joined), wait; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL: what a crash or an OOM kill does."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
