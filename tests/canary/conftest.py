"""Fixtures for the canary runtime: real model versions, real predictor processes, a real splitter.

One training pipeline run (kfp.local, small generated month) gives the session its base model. Every test that
needs versions registers them under a registered-model name of its own (`register_variant`), copied from that base
through the real registry, optionally altered the way a broken release would be:

- ``block=0.02``: a broken block threshold (the stored ``thresholds.json`` says block from 2 %, so it blocks far
  more);
- ``score_shift=1.0``: systematically higher scores (the XGBoost model's ``base_score`` moved up by that many
  log-odds, so every score rises);
- no change: a challenger equal in quality (the same trees, a different version).

Its own model name per test keeps aliases (``champion``, ``previous``) independent of the other suites. Predictor
processes are started with `serving.process.PredictorProcess` on free loopback ports and stopped at the end.
Latency is added, where a test needs a slow arm, by `DelayProxy`: a TCP proxy in front of a predictor that holds
each answer back, so the predictor itself stays untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fraud.settings import Settings
from fraud.stack.ports import pick_free_ports
from pipelines.runner import run_local
from serving.canary.splitter import Route, write_route
from serving.process import LOOPBACK, PredictorProcess

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
SERVER_ENV = {"FRAUD_SERVE_LOAD_RETRY_MAX": "2", "FRAUD_SERVE_GRACE_PERIOD": "5", "PYTHONUNBUFFERED": "1"}

RegisterVariant = Callable[..., str]
StartPredictor = Callable[..., PredictorProcess]


@pytest.fixture(scope="session")
def base_model_dir(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pipeline's version, downloaded (MLmodel and artifacts only: what the predictor reads)."""
    import mlflow.artifacts

    outcome = run_local(stack, PIPELINE_ARGUMENTS)
    target = tmp_path_factory.mktemp("canary-base")
    for part in ("MLmodel", "artifacts"):
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{stack.model_name}/{outcome.version}/{part}",
            dst_path=str(target),
            tracking_uri=stack.tracking_uri,
        )
    return target


def _shifted(probability: float, logits: float) -> float:
    """``probability`` moved by ``logits`` on the log-odds scale."""
    return 1.0 / (1.0 + math.exp(-(math.log(probability / (1.0 - probability)) + logits)))


def _shift_base_score(model_json: Path, logits: float) -> None:
    """Move an XGBoost binary:logistic model's base score by ``logits`` log-odds (every margin moves with it)."""
    model = json.loads(model_json.read_text())
    params = model["learner"]["learner_model_param"]
    raw = params["base_score"].strip("[]")
    shifted = _shifted(float(raw), logits)
    params["base_score"] = f"[{shifted:.8E}]" if params["base_score"].startswith("[") else f"{shifted:.8E}"
    model_json.write_text(json.dumps(model))


@pytest.fixture(scope="session")
def register_variant(
    stack: Settings, base_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> RegisterVariant:
    """``register_variant(name, block=None, score_shift=0.0, label="") -> version`` under registered model ``name``."""
    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient(stack.tracking_uri)

    def register(
        name: str,
        *,
        block: float | None = None,
        score_shift: float = 0.0,
        shift_thresholds: bool = False,
        label: str = "",
    ) -> str:
        work = tmp_path_factory.mktemp(f"variant-{name}")
        model = work / "model"
        shutil.copytree(base_model_dir, model)
        if block is not None:
            path = model / "artifacts" / "thresholds.json"
            thresholds = json.loads(path.read_text())
            thresholds["block"] = block
            thresholds["review"] = min(thresholds["review"], block)
            path.write_text(json.dumps(thresholds))
        if score_shift:
            _shift_base_score(model / "artifacts" / "model" / "model.json", score_shift)
        if score_shift and shift_thresholds:  # higher scores, the same decisions: only the score check can see it
            path = model / "artifacts" / "thresholds.json"
            thresholds = json.loads(path.read_text())
            for key in ("block", "review"):
                thresholds[key] = _shifted(thresholds[key], score_shift)
            path.write_text(json.dumps(thresholds))
        mlflow.set_tracking_uri(stack.tracking_uri)
        experiment = mlflow.set_experiment(stack.experiment_name)
        with contextlib.suppress(Exception):
            client.create_registered_model(name)
        with mlflow.start_run(experiment_id=experiment.experiment_id, run_name=f"variant {label or 'same'}") as run:
            mlflow.log_artifacts(str(model), "model")
            mlflow.set_tag("variant", label or "same")
        version = client.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
        return str(version.version)

    return register


@pytest.fixture
def start_predictor(tmp_path: Path) -> Iterator[StartPredictor]:
    """``start_predictor(model_name, version) -> PredictorProcess`` (ready), stopped after the test."""
    started: list[PredictorProcess] = []

    def start(model_name: str, version: str) -> PredictorProcess:
        http_port, grpc_port = pick_free_ports(2, LOOPBACK)
        predictor = PredictorProcess.start(
            http_port,
            grpc_port,
            ["--model_version", version, "--enable_grpc", "false", "--model_name", model_name],
            log_path=tmp_path / f"predictor-{model_name}-{version}-{http_port}.log",
            env={**SERVER_ENV, "FRAUD_MODEL_NAME": model_name},
            name=f"{model_name} v{version}",
        )
        predictor.model_name = model_name
        started.append(predictor)
        return predictor

    try:
        yield start
    finally:
        for predictor in started:
            predictor.stop(20)


class DelayProxy:
    """A loopback TCP proxy that forwards requests at once and holds every answer back by ``delay_s``."""

    def __init__(self, target_port: int, delay_s: float) -> None:
        (self.port,) = pick_free_ports(1, LOOPBACK)
        self.target_port = target_port
        self.delay_s = delay_s
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="delay-proxy", daemon=True)
        self._server: asyncio.base_events.Server | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> DelayProxy:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(asyncio.start_server(self._handle, LOOPBACK, self.port), self._loop)
        self._server = future.result(10)
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(LOOPBACK, self.target_port)
        except OSError:
            writer.close()
            return

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter, delay: float) -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while data := await source.read(65536):
                    if delay:
                        await asyncio.sleep(delay)
                    sink.write(data)
                    await sink.drain()
            with contextlib.suppress(OSError, RuntimeError):
                sink.close()

        await asyncio.gather(pump(reader, up_writer, 0.0), pump(up_reader, writer, self.delay_s))

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


@pytest.fixture
def delay_proxy() -> Iterator[Callable[[int, float], DelayProxy]]:
    """``delay_proxy(port, seconds) -> DelayProxy`` (started), stopped after the test."""
    proxies: list[DelayProxy] = []

    def make(port: int, delay_s: float) -> DelayProxy:
        proxy = DelayProxy(port, delay_s).start()
        proxies.append(proxy)
        return proxy

    try:
        yield make
    finally:
        for proxy in proxies:
            proxy.stop()


class SplitterProcess:
    """``python -m serving.canary`` on a free loopback port, with its route file and log."""

    def __init__(self, workdir: Path, route: Route, model_name: str, collector_url: str | None = None) -> None:
        import subprocess
        import sys

        (self.port,) = pick_free_ports(1, LOOPBACK)
        self.route_file = workdir / f"route-{self.port}.json"
        write_route(self.route_file, route)
        command = [sys.executable, "-m", "serving.canary", "--port", str(self.port)]
        command += ["--route-file", str(self.route_file), "--model-name", model_name, "--log-level", "warning"]
        if collector_url:
            command += ["--collector-url", collector_url]
        self.log_path = workdir / f"splitter-{self.port}.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        self._wait()

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def _wait(self) -> None:
        import time

        import requests

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"splitter exited: {self.log_path.read_text()[-2000:]}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.url}/v2/health/live", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise TimeoutError(f"splitter not live: {self.log_path.read_text()[-2000:]}")

    def admin(self, method: str, path: str, body: object | None = None) -> dict[str, Any]:
        import requests

        answer = requests.request(method, f"{self.url}/canary/{path}", json=body, timeout=10)
        answer.raise_for_status()
        result: dict[str, Any] = answer.json()
        return result

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except Exception:
            self.process.kill()


@pytest.fixture
def start_splitter(tmp_path: Path) -> Iterator[Callable[..., SplitterProcess]]:
    """``start_splitter(route, model_name, collector_url=None) -> SplitterProcess``, stopped after the test."""
    started: list[SplitterProcess] = []

    def start(route: Route, model_name: str, collector_url: str | None = None) -> SplitterProcess:
        splitter = SplitterProcess(tmp_path, route, model_name, collector_url)
        started.append(splitter)
        return splitter

    try:
        yield start
    finally:
        for splitter in started:
            splitter.stop()
