"""What `status` reports: per server whether it runs and answers, and where to reach the stack."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ServiceStatus:
    """One server: its pid when ours is running, its URL, and whether its health probe passed."""

    name: str
    pid: int | None
    url: str
    healthy: bool
    detail: str
    """'healthy', 'not running', or why the probe failed."""
    log_path: Path

    @property
    def running(self) -> bool:
        return self.pid is not None

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "pid": self.pid,
            "url": self.url,
            "healthy": self.healthy,
            "detail": self.detail,
            "log": str(self.log_path),
        }


@dataclass(frozen=True)
class StackStatus:
    """The whole local stack; ``ok`` only when every server runs and answers."""

    services: tuple[ServiceStatus, ...]
    mlflow_ui: str
    s3_endpoint: str
    home: Path
    collector_url: str = ""
    """Where payload loggers send CloudEvents and where labels are posted (``/v1/labels``)."""

    @property
    def ok(self) -> bool:
        return all(service.healthy for service in self.services)

    def service(self, name: str) -> ServiceStatus:
        for service in self.services:
            if service.name == name:
                return service
        raise KeyError(name)

    @property
    def pids(self) -> dict[str, int | None]:
        return {service.name: service.pid for service in self.services}

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form for `fraudctl status --json`."""
        return {
            "ok": self.ok,
            "mlflow_ui": self.mlflow_ui,
            "s3_endpoint": self.s3_endpoint,
            "collector_url": self.collector_url,
            "home": str(self.home),
            "services": [service.as_dict() for service in self.services],
        }
