"""`LocalStack`: the S3 store, the MLflow server and the inference-log collector on 127.0.0.1, as one thing to
bring up, inspect and stop.

The contract the CLI and the tests rely on:
- `up` is idempotent: a healthy server is left alone (same pid), a dead one is restarted, a stale pid file is
  removed, and a port held by anything we did not start is refused with the port, the server and the setting
  to change, before anything starts;
- `down` stops what `up` started and nothing else (pid file plus boot id and start time), and can run any time;
- all state (data, SQLite, logs, pids, keys) lives under ``settings.home_dir``.
`up` and `down` hold a lock file, so two concurrent `up`s cannot start two copies of a server.
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from fraud.errors import ConfigError, PortInUseError, StackError
from fraud.settings import Settings, get_settings, reset_settings
from fraud.stack.collector import CollectorService
from fraud.stack.credentials import Credentials, ensure_credentials, read_credentials
from fraud.stack.mlflow_server import MlflowServer
from fraud.stack.ports import describe_holder, pick_free_ports, port_is_free
from fraud.stack.seaweedfs import GRPC_OFFSET, SeaweedFS
from fraud.stack.service import StackService
from fraud.stack.status import ServiceStatus, StackStatus
from fraud.store import ObjectStore

log = logging.getLogger(__name__)

EventSink = Callable[[str], None]

__all__ = ["EventSink", "LocalStack", "ServiceStatus", "StackStatus"]


STACK_PORT_SETTINGS: tuple[str, ...] = (
    "s3_port",
    "seaweed_master_port",
    "seaweed_volume_port",
    "seaweed_filer_port",
    "seaweed_admin_port",
    "mlflow_port",
    "collector_port",
)
"""Every port a local stack listens on (SeaweedFS's gRPC ports are these + 10000)."""


def private_stack_overrides(home: Path, host: str = "127.0.0.1") -> dict[str, object]:
    """Setting overrides for a stack of its own: its own home and free ports (each port + 10000 free as well).

    Tests and benchmarks use it to run beside a developer's `.fraud/` stack without touching it.
    """
    ports = pick_free_ports(len(STACK_PORT_SETTINGS), host, with_grpc_offset=GRPC_OFFSET)
    return {"home": home, "stack_host": host, **dict(zip(STACK_PORT_SETTINGS, ports, strict=True))}


class LocalStack:
    """The local runtime's servers, configured entirely by `Settings`."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()

    # --- addresses -----------------------------------------------------------------------------------------
    @property
    def s3_endpoint(self) -> str:
        """The local S3 store (not ``settings.s3_endpoint``, which may point at a cluster's MinIO)."""
        return f"http://{self.settings.stack_host}:{self.settings.s3_port}"

    @property
    def mlflow_url(self) -> str:
        return f"http://{self.settings.stack_host}:{self.settings.mlflow_port}"

    @property
    def collector_url(self) -> str:
        return f"http://{self.settings.stack_host}:{self.settings.collector_port}"

    def _services(self, credentials: Credentials | None) -> tuple[SeaweedFS, MlflowServer, CollectorService]:
        return (
            SeaweedFS(self.settings, credentials),
            MlflowServer(self.settings, credentials, s3_endpoint=self.s3_endpoint),
            CollectorService(self.settings, credentials, s3_endpoint=self.s3_endpoint),
        )

    # --- up ------------------------------------------------------------------------------------------------
    def up(self, on_event: EventSink | None = None) -> StackStatus:
        """Start whatever is not running, wait until every server is healthy, create the buckets.

        Raises:
            PortInUseError: a port is held by a process the stack did not start (nothing is started then).
            StackError: a server exited or stayed unhealthy past ``stack_start_timeout`` (the message quotes
                its log and gives the log's path).
        """
        emit = _emitter(on_event)
        with self._lock():
            credentials, created = ensure_credentials(self.settings.credentials_path)
            if created:
                reset_settings()
                emit(f"generated S3 credentials in {self.settings.credentials_path} (mode 0600)")
            self._warn_about_client_settings(credentials)
            s3, mlflow, collector = self._services(credentials)
            running: dict[str, int | None] = {}
            for service in (s3, mlflow, collector):
                if service.clear_stale():
                    emit(f"{service.title}: removed a stale pid file")
                pid = service.process.running_pid()
                if pid is not None and not service.started_with_current_settings():
                    emit(f"{service.title}: settings or keys changed since it started; restarting it")
                    service.stop()
                    pid = None
                running[service.name] = pid
            self._check_ports([service for service in (s3, mlflow, collector) if running[service.name] is None])
            self._bring_up(s3, running[s3.name], emit)
            self._ensure_buckets(credentials, emit)
            self._bring_up(collector, running[collector.name], emit)  # seconds; MLflow takes ~20
            self._bring_up(mlflow, running[mlflow.name], emit)
        return self.status()

    def _bring_up(self, service: StackService, pid: int | None, emit: EventSink) -> None:
        timeout = self.settings.stack_start_timeout
        if pid is not None:
            if service.probe() is None:
                emit(f"{service.title}: already running (pid {pid}) at {service.url}")
                return
            emit(f"{service.title}: running (pid {pid}) but not answering yet; waiting")
            service.wait_healthy(pid, timeout)
            return
        emit(f"{service.title}: starting on {service.url}")
        pid = service.start()
        try:
            seconds = service.wait_healthy(pid, timeout)
        except StackError:
            service.stop()
            raise
        emit(f"{service.title}: healthy after {seconds:.1f} s (pid {pid})")

    def _check_ports(self, services: list[StackService]) -> None:
        """Refuse before starting anything if a port is taken or two servers would share one."""
        owners: dict[int, str] = {}
        every: tuple[StackService, ...] = self._services(None)
        for service in every:
            for spec in service.ports():
                if spec.port in owners:
                    raise ConfigError(
                        f"{spec.label} and {owners[spec.port]} are both set to port {spec.port}; change {spec.setting}"
                    )
                owners[spec.port] = spec.label
        host = self.settings.stack_host
        for service in services:
            for spec in service.ports():
                if not port_is_free(spec.port, host):
                    raise PortInUseError(spec.port, f"{spec.label}; held by {describe_holder(spec.port)}", spec.setting)

    def _ensure_buckets(self, credentials: Credentials, emit: EventSink) -> None:
        store = ObjectStore(self.s3_endpoint, credentials.access_key, credentials.secret_key, self.settings.aws_region)
        for bucket in self.settings.buckets:
            if store.ensure_bucket(bucket):
                emit(f"created bucket s3://{bucket}")

    def _warn_about_client_settings(self, credentials: Credentials) -> None:
        """Say so when this shell's settings would send clients elsewhere or with other keys."""
        s = self.settings
        if s.aws_access_key_id and s.aws_access_key_id != credentials.access_key:
            log.warning(
                "AWS_ACCESS_KEY_ID in the environment is not the local stack's key, so the local S3 store will "
                "refuse these settings; unset AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY to use %s",
                s.credentials_path,
            )
        if s.s3_endpoint != self.s3_endpoint:
            log.warning("MLFLOW_S3_ENDPOINT_URL is %s, not the local stack's %s", s.s3_endpoint, self.s3_endpoint)
        if s.tracking_uri != self.mlflow_url:
            log.warning("MLFLOW_TRACKING_URI is %s, not the local stack's %s", s.tracking_uri, self.mlflow_url)

    # --- down ----------------------------------------------------------------------------------------------
    def down(self) -> list[str]:
        """Stop the servers `up` started (the store last); returns their names. Never signals anything else."""
        stopped = []
        with self._lock():
            for service in reversed(self._services(None)):  # dependants first
                if service.stop():
                    stopped.append(service.name)
        log.info("local stack stopped: %s", ", ".join(stopped) or "nothing was running")
        return stopped

    # --- status --------------------------------------------------------------------------------------------
    def status(self) -> StackStatus:
        """Which servers run (ours, by pid file) and answer; read-only, so it never changes anything."""
        try:
            credentials = read_credentials(self.settings.credentials_path)
        except StackError:
            credentials = None
        rows = []
        for service in self._services(credentials):
            pid = service.process.running_pid()
            if pid is None:
                stale = " (stale pid file)" if service.process.pid_path.exists() else ""
                reason: str | None = f"not running{stale}"
            else:
                reason = service.probe()
            rows.append(
                ServiceStatus(
                    name=service.name,
                    pid=pid,
                    url=service.url,
                    healthy=reason is None,
                    detail=reason or "healthy",
                    log_path=service.process.log_path,
                )
            )
        return StackStatus(
            services=tuple(rows),
            mlflow_ui=self.mlflow_url,
            s3_endpoint=self.s3_endpoint,
            home=self.settings.home_dir,
            collector_url=self.collector_url,
        )

    # --- helpers -------------------------------------------------------------------------------------------
    @contextmanager
    def _lock(self) -> Iterator[None]:
        home = self.settings.home_dir
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        run = home / "run"
        run.mkdir(exist_ok=True)
        with (run / "stack.lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _emitter(on_event: EventSink | None) -> EventSink:
    def emit(message: str) -> None:
        log.info("%s", message)
        if on_event is not None:
            on_event(message)

    return emit
