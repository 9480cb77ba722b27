"""What every local-stack server has in common: ports to claim, a command, a health probe, a log to quote.

`LocalStack` drives the servers only through this interface, so adding one (a model server, a router) means one
more small subclass, not another branch in the lifecycle code.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fraud.errors import StackError
from fraud.settings import Settings
from fraud.stack.credentials import Credentials
from fraud.stack.process import ManagedProcess, is_alive

# Variables a server must not inherit from the shell: client-side settings that point elsewhere, and AWS
# profile/session variables that would make boto3 sign with something other than the stack's keys.
_DROPPED_PREFIXES = ("AWS_",)
_DROPPED_NAMES = {"MLFLOW_TRACKING_URI", "MLFLOW_S3_ENDPOINT_URL"}
_LOOPBACK_NAMES = "127.0.0.1,localhost,::1"


@dataclass(frozen=True)
class PortSpec:
    """A port a server listens on, and the setting a user changes when it is taken."""

    port: int
    label: str
    setting: str


def venv_bin() -> Path:
    """The directory of this interpreter's scripts (``weed``, ``mlflow``, ``uvicorn`` live there)."""
    return Path(sys.executable).parent


def child_env(settings: Settings, extra: Mapping[str, str]) -> dict[str, str]:
    """The environment for a server: ours, minus foreign credentials, plus its own variables.

    The venv's bin/ goes first on PATH because servers exec helpers by name (MLflow runs ``uvicorn``), and the
    loopback names go into NO_PROXY so a proxy configured for the internet never sits between two local servers.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(_DROPPED_PREFIXES) and key not in _DROPPED_NAMES
    }
    env["PATH"] = os.pathsep.join([str(venv_bin()), env.get("PATH", os.defpath)])
    for name in ("NO_PROXY", "no_proxy"):
        env[name] = ",".join(part for part in (env.get(name, ""), _LOOPBACK_NAMES) if part)
    env["AWS_DEFAULT_REGION"] = settings.aws_region
    env.update(extra)
    return env


class StackService(ABC):
    """One server of the local stack."""

    name: str
    """Short id: pid and log file names, status rows."""
    title: str
    """Human name used in messages."""
    poll_interval: float = 0.25

    def __init__(self, settings: Settings, credentials: Credentials | None) -> None:
        self.settings = settings
        self.credentials = credentials
        home = settings.home_dir
        self.process = ManagedProcess(self.name, home / "run" / f"{self.name}.pid", home / "logs" / f"{self.name}.log")

    @property
    def host(self) -> str:
        return self.settings.stack_host

    @property
    @abstractmethod
    def url(self) -> str:
        """Where clients reach the server."""

    @abstractmethod
    def ports(self) -> list[PortSpec]:
        """Every TCP port the server will listen on."""

    @abstractmethod
    def command(self) -> list[str]: ...

    @abstractmethod
    def server_vars(self) -> dict[str, str]:
        """The variables this server needs (keys, endpoints) on top of the inherited environment."""

    def env(self) -> dict[str, str]:
        return child_env(self.settings, self.server_vars())

    def config_fingerprint(self) -> str:
        """A digest of everything the server was configured with (command line and its own variables).

        Kept in the pid file: when the settings change under a running server (another port, new keys), `up`
        sees the difference and restarts it instead of waiting for a server that listens elsewhere.
        """
        payload = json.dumps([self.command(), sorted(self.server_vars().items())])
        return hashlib.sha256(payload.encode()).hexdigest()

    @abstractmethod
    def probe(self) -> str | None:
        """None when the server answers as it should, else a short reason."""

    @property
    def workdir(self) -> Path:
        return self.settings.home_dir / self.name

    def prepare(self) -> None:
        """Create directories and clear leftovers before a start."""
        self.workdir.mkdir(parents=True, exist_ok=True)

    def cleanup(self, previous_command: Sequence[str] = ()) -> None:  # noqa: B027 (most leave nothing behind)
        """Remove what a stopped server leaves behind (``previous_command``: how the stopped one was started)."""

    def stop(self) -> bool:
        """Stop our server if it runs, then clean up after it as it was configured. True when one was stopped."""
        previous = self._recorded_command()
        stopped = self.process.stop()
        self.cleanup(previous)
        return stopped

    def clear_stale(self) -> bool:
        """Remove a stale pid file and what the dead server left behind. True when there was one."""
        previous = self._recorded_command()
        if not self.process.clear_stale():
            return False
        self.cleanup(previous)
        return True

    def _recorded_command(self) -> tuple[str, ...]:
        record = self.process.record()
        return record.command if record is not None else ()

    def start(self) -> int:
        self.prepare()
        return self.process.start(self.command(), self.env(), self.workdir, self.config_fingerprint())

    def started_with_current_settings(self) -> bool:
        record = self.process.record()
        return record is not None and record.config == self.config_fingerprint()

    def wait_healthy(self, pid: int, timeout: float) -> float:
        """Seconds until the probe passed. Fails early, quoting the log, if the server exits or times out."""
        started = time.monotonic()
        reason = "not answering yet"
        while time.monotonic() - started < timeout:
            reason = self.probe() or ""
            if not reason:
                return time.monotonic() - started
            if not is_alive(pid):
                code = self.process.exit_code(pid)
                status = f" with code {code}" if code is not None else ""
                raise StackError(f"{self.title} exited during start{status}; {self.log_excerpt()}")
            time.sleep(self.poll_interval)
        raise StackError(
            f"{self.title} did not become healthy within {timeout:g} s ({reason}); {self.log_excerpt()}; "
            "raise FRAUD_STACK_START_TIMEOUT if the machine is just slow"
        )

    def log_excerpt(self, lines: int = 5) -> str:
        """The last log lines on one line, and where the full log is."""
        try:
            text = self.process.log_path.read_text(errors="replace")
        except OSError:
            return f"no log at {self.process.log_path}"
        tail = [line.strip()[:200] for line in text.splitlines() if line.strip()][-lines:]
        quoted = " | ".join(tail) if tail else "(empty)"
        return f"last log lines: {quoted}; full log: {self.process.log_path}"
