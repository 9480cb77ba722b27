"""The three servers of the serving benchmark, how to start them, and what they are sent.

- ours: the project's KServe predictor (`python -m serving`), V1 for single transactions, V1 and V2 for batches;
- mlflow: `mlflow models serve` of the registered version (`/invocations`, ``dataframe_split``);
- mlserver: MLServer with its MLflow runtime (`mlserver_mlflow.MLflowRuntime`, the runtime KServe uses for MLflow
  models), Open Inference Protocol V2 with one named input per signature column, in its own virtualenv built
  from ``benchmarks/peers/mlserver-requirements.txt``.

Each server runs as one process tree in a session of its own (so it can be stopped whole, and its CPU time
read with psutil), on loopback ports picked free just before it starts.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from benchmarks.loadgen import http_request

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
MODEL_NAME = "fraud-detector"
MLSERVER_REQUIREMENTS = REPO / "benchmarks" / "peers" / "mlserver-requirements.txt"

Row = dict[str, Any]
Encoder = Callable[[Sequence[Row]], bytes]

FIELDS: tuple[tuple[str, str], ...] = (
    ("step", "INT64"),
    ("type", "BYTES"),
    ("amount", "FP64"),
    ("nameOrig", "BYTES"),
    ("nameDest", "BYTES"),
    ("oldbalanceOrg", "FP64"),
    ("oldbalanceDest", "FP64"),
)
"""The decision-time fields every request carries, with their Open Inference Protocol datatypes."""


def _dumps(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _instances(rows: Sequence[Row]) -> list[dict[str, Any]]:
    return [{name: row[name] for name, _ in FIELDS} for row in rows]


def _inputs(rows: Sequence[Row], *, column_shape: bool = False) -> list[dict[str, Any]]:
    n = len(rows)
    shape = [n, 1] if column_shape else [n]
    return [
        {"name": name, "shape": shape, "datatype": datatype, "data": [row[name] for row in rows]}
        for name, datatype in FIELDS
    ]


SCORES_ONLY: dict[str, Any] = {"reasons": "none"}
"""The request parameters of ours asking for probabilities and decisions only: what the peers answer, and what
the in-process ceiling computes, so batch comparisons are like for like."""


def v1_body(rows: Sequence[Row]) -> bytes:
    """KServe V1: ``{"instances": [ {transaction}, … ]}``."""
    return _dumps({"instances": _instances(rows)})


def v1_scores_only_body(rows: Sequence[Row]) -> bytes:
    """V1 asking for no reasons (`SCORES_ONLY`)."""
    return _dumps({"instances": _instances(rows), "parameters": SCORES_ONLY})


def v2_body(rows: Sequence[Row], *, column_shape: bool = False) -> bytes:
    """Open Inference Protocol V2, columnar: one named input per field (shape [n], or [n, 1] if asked)."""
    return _dumps({"inputs": _inputs(rows, column_shape=column_shape)})


def v2_scores_only_body(rows: Sequence[Row]) -> bytes:
    """V2 asking for no reasons (`SCORES_ONLY`)."""
    return _dumps({"parameters": SCORES_ONLY, "inputs": _inputs(rows)})


def mlflow_body(rows: Sequence[Row]) -> bytes:
    """MLflow scoring server: ``dataframe_split`` (columns once, then the rows' values)."""
    columns = [name for name, _ in FIELDS]
    return _dumps({"dataframe_split": {"columns": columns, "data": [[row[c] for c in columns] for row in rows]}})


@dataclass(frozen=True)
class Endpoint:
    label: str
    path: str
    encode: Encoder

    def request(self, port: int, rows: Sequence[Row]) -> bytes:
        return http_request(HOST, port, self.path, self.encode(rows))


V1 = Endpoint("V1", f"/v1/models/{MODEL_NAME}:predict", v1_body)
V2 = Endpoint("V2", f"/v2/models/{MODEL_NAME}/infer", v2_body)
V1_SCORES_ONLY = Endpoint("V1-scores-only (reasons none)", f"/v1/models/{MODEL_NAME}:predict", v1_scores_only_body)
V2_SCORES_ONLY = Endpoint("V2-scores-only (reasons none)", f"/v2/models/{MODEL_NAME}/infer", v2_scores_only_body)
MLFLOW_INVOCATIONS = Endpoint("/invocations dataframe_split", "/invocations", mlflow_body)
MLSERVER_V2 = Endpoint("V2", f"/v2/models/{MODEL_NAME}/infer", lambda rows: v2_body(rows, column_shape=True))


def _values(answer: Any, key: str) -> list[Any]:
    """Every value of ``key`` in an answer, whatever the protocol: V1 records and MLflow's columns (the key's
    scalar or list) and V2 outputs (the ``data`` of the output named ``key``)."""
    found: list[Any] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("name") == key and isinstance(node.get("data"), list):
                found.extend(node["data"])
                return
            for name, value in node.items():
                if name == key and isinstance(value, list):
                    found.extend(value)
                elif name == key and not isinstance(value, dict):
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(answer)
    return found


def probabilities(answer: Any) -> list[float]:
    """Every ``fraud_probability`` in an answer, whatever the protocol (V1 records, V2 outputs, MLflow)."""
    return [float(v) for v in _values(answer, "fraud_probability")]


def model_versions(answer: Any) -> set[str]:
    """Every ``model_version`` value in an answer (ours reports the version it scored with)."""
    return {str(v) for v in _values(answer, "model_version")}


# --- processes -------------------------------------------------------------------------------------------------
def _session_pids(session: int) -> list[int]:
    pids = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if os.getsid(process.pid) == session and process.status() not in {psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD}:
                pids.append(process.pid)
    return sorted(pids)


def process_name(pid: int) -> str:
    try:
        return psutil.Process(pid).name()
    except psutil.Error:
        return "?"


def _cpu_seconds(pid: int) -> float:
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


def _rss_bytes(pid: int) -> int:
    try:
        return int(psutil.Process(pid).memory_info().rss)
    except psutil.Error:
        return 0


class ServerProcess:
    """A server started in its own session, with its log in a file; `stop` ends the whole session."""

    def __init__(self, name: str, command: Sequence[str], env: Mapping[str, str], cwd: Path, log_path: Path) -> None:
        self.name = name
        self.command = list(command)
        self.env = dict(env)
        self.cwd = cwd
        self.log_path = log_path
        self.popen: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.popen = subprocess.Popen(
                self.command,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started_at = time.monotonic()

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def pids(self) -> list[int]:
        """Every live process of the server's session (the server and whatever it forked)."""
        return _session_pids(self.pid) if self.popen is not None else []

    def cpu_seconds(self) -> float:
        """CPU time of the session's live processes so far."""
        return sum(_cpu_seconds(pid) for pid in self.pids())

    def rss_mb(self) -> float:
        return sum(_rss_bytes(pid) for pid in self.pids()) / 2**20

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM to the session's process group, SIGKILL to whatever of the session is left after ``grace``."""
        if self.popen is None:
            return
        session = self.popen.pid
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(session, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and (self.popen.poll() is None or _session_pids(session)):
            time.sleep(0.1)
        for pid in _session_pids(session):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)
        self.popen = None


def post(url: str, body: bytes, timeout: float = 10.0) -> tuple[int, bytes]:
    """One POST with urllib (setup and checks only; the load generator does the measuring)."""
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())


# --- the servers -----------------------------------------------------------------------------------------------
@dataclass
class ServerSpec:
    """How to start one server and what to send it."""

    key: str
    title: str
    command: list[str]
    env: dict[str, str]
    single: Endpoint
    batch: list[Endpoint]
    http_port: int
    notes: list[str] = field(default_factory=list)
    available: bool = True
    unavailable_reason: str = ""
    start_timeout: float = 240.0

    def url(self, endpoint: Endpoint) -> str:
        return f"http://{HOST}:{self.http_port}{endpoint.path}"


def base_env(extra: Mapping[str, str] | None = None, *, path_first: Path | None = None) -> dict[str, str]:
    """A child's environment: this one without the stack/credential variables the caller did not pass."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not (key.startswith(("AWS_", "FRAUD_", "MLFLOW_", "VIRTUAL_ENV")) or key == "PYTHONPATH")
    }
    if path_first is not None:
        env["PATH"] = f"{path_first}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


DEFAULT_OURS_COMMAND = "{python} -m serving --http_port {http_port} --grpc_port {grpc_port}"


def ours(
    ports: Sequence[int],
    stack_env: Mapping[str, str],
    *,
    command_template: str,
    model_dir: Path,
    version: str,
    alias: str,
) -> ServerSpec:
    http_port, grpc_port = ports[0], ports[1]
    venv_bin = Path(sys.executable).parent
    values = {
        "python": sys.executable,
        "fraudctl": str(venv_bin / "fraudctl"),
        "http_port": str(http_port),
        "grpc_port": str(grpc_port),
        "model_dir": str(model_dir),
        "version": version,
        "alias": alias,
        "model_name": MODEL_NAME,
    }
    command = [part.format(**values) for part in command_template.split()]
    spec = ServerSpec(
        key="ours",
        title="ours (KServe predictor)",
        command=command,
        env=base_env({**stack_env, "FRAUD_MODEL_ALIAS": alias}, path_first=venv_bin),
        single=V1,
        batch=[V1, V2, V1_SCORES_ONLY, V2_SCORES_ONLY],
        http_port=http_port,
    )
    if command_template == DEFAULT_OURS_COMMAND and not (REPO / "serving" / "__main__.py").is_file():
        spec.available = False
        spec.unavailable_reason = "serving/__main__.py does not exist yet (the predictor is being written)"
    return spec


def mlflow_serve(ports: Sequence[int], stack_env: Mapping[str, str], *, version: str) -> ServerSpec:
    venv_bin = Path(sys.executable).parent
    command = [
        str(venv_bin / "mlflow"),
        "models",
        "serve",
        "-m",
        f"models:/{MODEL_NAME}/{version}",
        "--env-manager",
        "local",
        "-h",
        HOST,
        "-p",
        str(ports[0]),
        "-w",
        "1",
    ]
    return ServerSpec(
        key="mlflow",
        title="mlflow models serve",
        command=command,
        env=base_env(dict(stack_env), path_first=venv_bin),
        single=MLFLOW_INVOCATIONS,
        batch=[MLFLOW_INVOCATIONS],
        http_port=ports[0],
        notes=["1 worker, --env-manager local (the project's environment)"],
    )


def mlserver(ports: Sequence[int], *, venv: Path, workdir: Path, model_dir: Path, parallel_workers: int) -> ServerSpec:
    http_port, grpc_port, metrics_port = ports[0], ports[1], ports[2]
    root = workdir / "mlserver"
    model_root = root / MODEL_NAME
    model_root.mkdir(parents=True, exist_ok=True)
    settings = {
        "debug": False,
        "host": HOST,
        "http_port": http_port,
        "grpc_port": grpc_port,
        "metrics_port": metrics_port,
        "metrics_endpoint": None,
        "parallel_workers": parallel_workers,
        "load_models_at_startup": True,
        "model_repository_root": str(root),
    }
    (root / "settings.json").write_text(json.dumps(settings, indent=2))
    model_settings = {
        "name": MODEL_NAME,
        "implementation": "mlserver_mlflow.MLflowRuntime",
        "parameters": {"uri": str(model_dir)},
    }
    (model_root / "model-settings.json").write_text(json.dumps(model_settings, indent=2))
    workers = "inference in the server process" if parallel_workers == 0 else f"{parallel_workers} inference worker(s)"
    return ServerSpec(
        key="mlserver",
        title="MLServer + MLflow runtime",
        command=[str(venv / "bin" / "mlserver"), "start", str(root)],
        env=base_env(path_first=venv / "bin"),
        single=MLSERVER_V2,
        batch=[MLSERVER_V2],
        http_port=http_port,
        notes=[
            f"own venv {venv}",
            f"parallel_workers={parallel_workers} ({workers}), metrics endpoint off, gRPC on a free port",
        ],
    )


# --- MLServer's virtualenv -------------------------------------------------------------------------------------
def find_uv(explicit: str | None) -> str:
    """The uv binary: --uv, else `uv` on PATH, else the Makefile's bootstrap (.tools/bin/uv)."""
    if explicit:
        if not Path(explicit).is_file():
            raise SystemExit(f"--uv {explicit}: no such file")
        return explicit
    found = shutil.which("uv")
    if found:
        return found
    bootstrap = REPO / ".tools" / "bin" / "uv"
    if bootstrap.is_file():
        return str(bootstrap)
    raise SystemExit("uv not found: pass --uv PATH, put uv on PATH, or run `make .tools/bin/uv`")


def ensure_mlserver_venv(uv: str, venv: Path, log: Callable[[str], None]) -> Path:
    """Create (or re-create when the requirements changed) MLServer's own virtualenv; returns its path."""
    digest = hashlib.sha256(MLSERVER_REQUIREMENTS.read_bytes()).hexdigest()
    stamp = venv / ".requirements.sha256"
    if stamp.is_file() and stamp.read_text().strip() == digest and (venv / "bin" / "mlserver").is_file():
        log(f"MLServer venv {venv} is up to date")
        return venv
    log(f"building MLServer's venv in {venv} from {MLSERVER_REQUIREMENTS.relative_to(REPO)} …")
    started = time.monotonic()
    if venv.exists():
        shutil.rmtree(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    subprocess.run([uv, "venv", "--quiet", "--python", python, str(venv)], check=True)
    subprocess.run(
        [
            uv,
            "pip",
            "install",
            "--quiet",
            "--compile-bytecode",
            "--python",
            str(venv / "bin" / "python"),
            "-r",
            str(MLSERVER_REQUIREMENTS),
        ],
        check=True,
    )
    stamp.write_text(digest + "\n")
    log(f"MLServer venv ready after {time.monotonic() - started:.0f} s")
    return venv
