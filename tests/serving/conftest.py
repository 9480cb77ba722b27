"""Fixtures for the predictor: a version registered by the real pipeline, and real predictor processes.

Timeline of one session (the stack fixture is shared with the other suites):

1. Before anything is registered, two predictors start (`early_servers`): ``main`` points at the live registry
   but asks for an alias (``serving-test``) that does not exist yet; ``offline`` points at a registry port where
   nothing listens yet (a TCP proxy to the real MLflow server opens there later). Both come up not ready and
   retry; their start overlaps the pipeline run, so it costs no wall time.
2. `served_model` runs the training pipeline (kfp.local, the real components) on generated data, then points
   ``serving-test`` at the version it registered. The suite's own alias keeps the tests independent of what
   other suites did to ``champion``.
3. ``main`` loads that version by itself; the readiness test opens the proxy and watches ``offline`` load too.

Every predictor is a real ``python -m serving`` (or ``fraudctl serve``) process on free loopback ports
(`serving.process.PredictorProcess`); each is stopped with SIGTERM at the end, and its JSON log is kept for
assertions. Test modules import nothing from this file (mypy maps it as a top-level ``conftest``): they get
everything through fixtures, and types from `serving.process`.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from fraud.settings import Settings
from fraud.stack.ports import pick_free_ports
from pipelines.runner import PipelineOutcome, run_local
from samples import PAYSIM_STEPS1TO9
from serving.process import LOOPBACK as HOST
from serving.process import PredictorProcess

ALIAS = "serving-test"
REPO = Path(__file__).resolve().parents[2]
FRAUDCTL = str(Path(sys.executable).with_name("fraudctl"))
SAMPLE = PAYSIM_STEPS1TO9
PIPELINE_ARGUMENTS = {
    "source": "generator",
    "rows": 20_000,
    "seed": 11,
    "train_end_step": 240,
    "valid_end_step": 408,
    "n_trials": 2,
    "families": "xgboost",
    "feature_set": "strict",
}
SERVER_ENV = {
    "FRAUD_SERVE_LOAD_RETRY_MAX": "2",  # tests wait for readiness; production waits up to 30 s between tries
    "FRAUD_SERVE_GRACE_PERIOD": "20",
    "PYTHONUNBUFFERED": "1",
}


def start_server(
    name: str,
    log_dir: Path,
    *,
    args: list[str] | None = None,
    env: Mapping[str, str] | None = None,
    cli: bool = False,
) -> PredictorProcess:
    """Start ``python -m serving`` (or ``fraudctl serve`` with ``cli``) on two free loopback ports."""
    http_port, grpc_port = pick_free_ports(2, HOST)
    full_env = {**SERVER_ENV, **(env or {})}
    log_path = log_dir / f"{name}.log"
    if not cli:
        return PredictorProcess.start(http_port, grpc_port, args or [], log_path=log_path, env=full_env, name=name)
    command = [FRAUDCTL, "serve", "--port", str(http_port), "--grpc-port", str(grpc_port), *(args or [])]
    return PredictorProcess.launch(command, http_port, grpc_port, log_path=log_path, env=full_env, name=name)


class TcpProxy:
    """Forwards a loopback port to another; until `start`, nothing listens there (an unreachable registry)."""

    def __init__(self, port: int, target_port: int) -> None:
        self.port = port
        self.target_port = target_port
        self._listener: socket.socket | None = None
        self._stop = threading.Event()

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, self.port))
        listener.listen(64)
        listener.settimeout(0.5)
        self._listener = listener
        threading.Thread(target=self._accept, name="tcp-proxy", daemon=True).start()

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection((HOST, self.target_port), timeout=10)
            except OSError:
                client.close()
                continue
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.close()


@dataclass
class EarlyServers:
    main: PredictorProcess
    offline: PredictorProcess
    proxy: TcpProxy


@pytest.fixture(scope="session")
def serving_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serving-logs")


@pytest.fixture(scope="session")
def early_servers(stack: Settings, serving_logs: Path) -> Iterator[EarlyServers]:
    """Predictors started before the model exists (``main``) and before the registry is reachable (``offline``)."""
    (proxy_port,) = pick_free_ports(1, HOST)
    proxy = TcpProxy(proxy_port, stack.mlflow_port)
    main = start_server("main", serving_logs, cli=True, args=["--alias", ALIAS])
    offline = start_server(
        "offline",
        serving_logs,
        args=["--alias", ALIAS],
        env={"MLFLOW_TRACKING_URI": f"http://{HOST}:{proxy_port}"},
    )
    try:
        yield EarlyServers(main, offline, proxy)
    finally:
        for server in (main, offline):
            server.stop()
        proxy.stop()


@pytest.fixture(scope="session")
def served_model(stack: Settings, early_servers: EarlyServers) -> PipelineOutcome:
    """The version the real training pipeline registered, aliased ``serving-test`` (servers already started)."""
    outcome = run_local(stack, PIPELINE_ARGUMENTS)
    MlflowClient(stack.tracking_uri).set_registered_model_alias(stack.model_name, ALIAS, outcome.version)
    return outcome


@pytest.fixture(scope="session")
def server(early_servers: EarlyServers, served_model: PipelineOutcome) -> PredictorProcess:
    """The main predictor (`fraudctl serve --alias serving-test`), ready with the pipeline's version."""
    early_servers.main.wait_ready()
    return early_servers.main


@pytest.fixture(scope="session")
def model_dir(stack: Settings, served_model: PipelineOutcome, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The version downloaded whole, as KServe's storage initializer would mount it at /mnt/models."""
    import mlflow.artifacts

    target = tmp_path_factory.mktemp("mounted-model")
    return Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{stack.model_name}/{served_model.version}",
            dst_path=str(target),
            tracking_uri=stack.tracking_uri,
        )
    )


@pytest.fixture(scope="session")
def early_main(early_servers: EarlyServers) -> PredictorProcess:
    """The main predictor, as started (it may not be ready yet)."""
    return early_servers.main


@pytest.fixture(scope="session")
def offline_server(early_servers: EarlyServers) -> PredictorProcess:
    """The predictor whose registry address had nothing listening when it started."""
    return early_servers.offline


@pytest.fixture(scope="session")
def open_registry(early_servers: EarlyServers) -> Callable[[], None]:
    """Make the offline predictor's registry reachable (open the proxy to the real MLflow server)."""
    return early_servers.proxy.start


@pytest.fixture(scope="session")
def start_predictor(serving_logs: Path) -> Callable[..., PredictorProcess]:
    """Start another ``python -m serving`` on free ports: ``start_predictor(name, args=[...], env={...})``."""

    def start(name: str, *, args: list[str] | None = None, env: Mapping[str, str] | None = None) -> PredictorProcess:
        return start_server(name, serving_logs, args=args, env=env)

    return start


@pytest.fixture(scope="session")
def genuine_csv() -> Path:
    """The head of the published PaySim log (steps 1–9)."""
    return SAMPLE


@pytest.fixture(scope="session")
def public_server(served_model: PipelineOutcome, serving_logs: Path) -> Iterator[PredictorProcess]:
    """A predictor serving the same version through KServe's public handlers only (``FRAUD_SERVE_FAST_PATH=0``),
    with a short body read timeout (2 s) for the slow-client test."""
    server = start_server(
        "public",
        serving_logs,
        args=["--alias", ALIAS],
        env={"FRAUD_SERVE_FAST_PATH": "0", "FRAUD_SERVE_READ_TIMEOUT": "2"},
    )
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
