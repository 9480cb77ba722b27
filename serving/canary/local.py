"""The local canary runtime: predictor processes, the splitter, the controller loop and the state on disk.

What `fraudctl canary start` leaves running (each a detached process with a pid file under the stack's state
directory, found again and stopped by `fraudctl down` the way `fraud.stack` does for its servers):

- one predictor per version in play (``canary-predictor-v<N>``), on free loopback ports;
- the splitter (``canary-splitter``) on ``FRAUD_CANARY_PORT``: the endpoint clients call;
- the controller (``canary-controller``, ``python -m serving.canary.local``) until the rollout ends.

Everything the rollout knows lives under ``<FRAUD_HOME>/canary/``: ``state.json`` (`RolloutState`),
``route.json`` (the splitter's routing), ``runtime.json`` (which port serves which version), ``windows.jsonl``
(one line per analysis window, for the report) and the lock every writer holds.

The crash-safety protocol (`serving.canary.rollout`): a state carrying ``pending_action`` is written *before* the
action is applied and the cleared state after; whoever takes the lock next and finds an action pending applies it
again. Every apply is idempotent: routing is set to what the action says (not changed by a delta), registry
aliases are moved only when they do not already point where they should, and stopping a stopped process is a
no-op. So a controller killed anywhere in a promotion (say between the registry and the routing) leaves a state
that the next controller (or ``fraudctl canary status`` / ``promote`` / ``rollback``) completes, and afterwards
the registry's ``champion`` and the splitter's champion are the same version.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import orjson
import requests

from fraud.errors import ConfigError, FraudError, RegistryError
from fraud.settings import Settings, load_settings
from fraud.stack.ports import pick_free_ports
from fraud.stack.process import ManagedProcess
from fraud.stack.service import child_env
from serving.canary.analysis import AnalysisConfig
from serving.canary.evidence import ArmLabels, ArmSample, LabelSample, Window
from serving.canary.report import SCORE_BINS, ReportLocations, publish_report
from serving.canary.rollout import (
    Action,
    ActionKind,
    RolloutSpec,
    RolloutState,
    applied,
    manual,
    reconcile,
    start,
)
from serving.canary.splitter import SHADOW_ID_SUFFIX, Route, Target, read_route, write_route

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

# The registry (mlflow) and pandas are imported where they are used: the controller's loop needs neither until it
# applies a promotion or rollback or reads labels, and importing them took 10-15 s of its start-up on a busy machine.

log = logging.getLogger(__name__)

PREVIOUS: Final = "previous"
"""Registry alias of the champion a promotion replaced (kept reachable; nothing is deleted)."""
TAG_OUTCOME: Final = "canary_outcome"
TAG_REASON: Final = "canary_reason"

Emit = Callable[[str], None]
_PASSED_SETTINGS: Final = frozenset({"model_name", "stack_host", "data_bucket", "artifact_bucket", "experiment_name"})
"""Settings besides ``canary_*`` the controller and predictors must share with the command that started them."""


class CanaryError(FraudError):
    """A rollout cannot start or go on locally (the message says what to do)."""

    exit_code = 12


# --------------------------------------------------------------------------------------------- files


@dataclass(frozen=True)
class CanaryPaths:
    """Where the local rollout keeps its files."""

    root: Path

    @classmethod
    def of(cls, settings: Settings) -> CanaryPaths:
        return cls(settings.home_dir / "canary")

    @property
    def state(self) -> Path:
        return self.root / "state.json"

    @property
    def route(self) -> Path:
        return self.root / "route.json"

    @property
    def runtime(self) -> Path:
        return self.root / "runtime.json"

    @property
    def windows(self) -> Path:
        return self.root / "windows.jsonl"

    @property
    def lock(self) -> Path:
        return self.root / "canary.lock"

    @property
    def report_dir(self) -> Path:
        return self.root / "report"


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    with tmp.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


def spec_from_settings(
    settings: Settings,
    champion_version: str,
    challenger_version: str,
    *,
    steps: tuple[int, ...] | None = None,
    shadow: bool | None = None,
    min_requests: int | None = None,
    min_seconds: float | None = None,
) -> RolloutSpec:
    """A rollout spec from the ``FRAUD_CANARY_*`` settings, with command-line values winning.

    Raises:
        ConfigError: the steps are not increasing percentages (the message names the bad one).
    """
    if steps is None:
        steps = parse_steps(settings.canary_steps)
    try:
        return RolloutSpec(
            champion_version=champion_version,
            challenger_version=challenger_version,
            steps=steps,
            shadow=settings.canary_shadow if shadow is None else shadow,
            min_requests=settings.canary_min_requests if min_requests is None else min_requests,
            min_seconds=settings.canary_min_seconds if min_seconds is None else min_seconds,
            max_inconclusive_seconds=settings.canary_max_inconclusive_seconds,
            label_gate=settings.canary_label_gate,
            analysis=analysis_from_settings(settings),
        )
    except ValueError as exc:
        raise ConfigError(f"invalid rollout settings: {exc}") from exc


def analysis_from_settings(settings: Settings) -> AnalysisConfig:
    """The analysis's defaults with the ``FRAUD_CANARY_*`` latency settings (floors of a harm, warm-up)."""
    return AnalysisConfig(
        latency_tolerance_ratio=settings.canary_latency_tolerance_ratio,
        latency_tolerance_ms=settings.canary_latency_tolerance_ms,
        warmup_seconds=settings.canary_warmup_seconds,
    )


def parse_steps(text: str) -> tuple[int, ...]:
    """``"5,25,50,100"`` as weights.

    Raises:
        ConfigError: a part is not a whole number.
    """
    try:
        return tuple(int(part) for part in text.replace(" ", "").split(",") if part)
    except ValueError as exc:
        raise ConfigError(
            f"--steps expects whole percentages separated by commas, e.g. 5,25,50,100; got '{text}'"
        ) from exc


# --------------------------------------------------------------------------------------------- the runtime


class LocalRuntime:
    """Processes, routing, registry and state of one machine's rollout, all configured by `Settings`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.paths = CanaryPaths.of(settings)
        self.home = settings.home_dir
        self._counted: set[str] | None = None
        self._counted_cutoff = 0.0  # Unix seconds: labels at or before it were counted by an earlier controller

    # --- processes -----------------------------------------------------------------------------------------
    def _process(self, name: str) -> ManagedProcess:
        return ManagedProcess(name, self.home / "run" / f"{name}.pid", self.home / "logs" / f"{name}.log")

    def predictor_process(self, version: str) -> ManagedProcess:
        return self._process(f"canary-predictor-v{version}")

    @property
    def splitter_process(self) -> ManagedProcess:
        return self._process("canary-splitter")

    @property
    def controller_process(self) -> ManagedProcess:
        return self._process("canary-controller")

    @property
    def endpoint(self) -> str:
        return f"http://{self.settings.stack_host}:{self.settings.canary_port}"

    def _env(self) -> dict[str, str]:
        """The children's environment: the stack's endpoints and keys plus every setting they read from it."""
        own = {
            f"FRAUD_{name.upper()}": str(value).lower() if isinstance(value, bool) else str(value)
            for name, value in self.settings.model_dump().items()
            if (name.startswith("canary_") or name in _PASSED_SETTINGS) and value is not None
        }
        return child_env(self.settings, {**self.settings.server_env(), **own, "PYTHONUNBUFFERED": "1"})

    def _runtime_file(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.paths.runtime.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            data = {}
        return {"predictors": dict(data.get("predictors", {})), "attached": dict(data.get("attached", {}))}

    def _ports(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self._runtime_file()["predictors"].items()}

    def attach_predictor(self, version: str, url: str) -> None:
        """Serve ``version`` from a predictor started elsewhere (not started or stopped by this runtime)."""
        data = self._runtime_file()
        data["attached"][version] = url.rstrip("/")
        _write_atomic(self.paths.runtime, json.dumps(data, indent=2))

    def predictor_url(self, version: str) -> str:
        data = self._runtime_file()
        if version in data["attached"]:
            return str(data["attached"][version])
        port = data["predictors"].get(version)
        if port is None:
            raise CanaryError(f"no predictor of version {version} was started; run `fraudctl canary start`")
        return f"http://{self.settings.stack_host}:{port}"

    def ensure_predictor(self, version: str) -> str:
        """Start a predictor of ``version`` unless ours already runs (or one is attached); returns its URL."""
        data = self._runtime_file()
        if version in data["attached"]:
            return str(data["attached"][version])
        process = self.predictor_process(version)
        process.clear_stale()
        ports = self._ports()
        if process.running_pid() is not None and version in ports:
            return f"http://{self.settings.stack_host}:{ports[version]}"
        http_port, grpc_port = pick_free_ports(2, self.settings.stack_host)
        command = [
            sys.executable,
            "-m",
            "serving",
            "--http_port",
            str(http_port),
            "--grpc_port",
            str(grpc_port),
            "--enable_grpc",
            "false",
            "--model_version",
            version,
            "--host",
            self.settings.stack_host,
            # The splitter logs both arms' traffic (each event naming its arm); a predictor behind it logging too
            # (a FRAUD_SERVE_LOGGER_URL in the environment) would send every transaction twice.
            "--logger_url",
            "",
        ]
        self.paths.root.mkdir(parents=True, exist_ok=True)
        process.start(command, self._env(), self.paths.root)
        data["predictors"][version] = http_port
        _write_atomic(self.paths.runtime, json.dumps(data, indent=2))
        return f"http://{self.settings.stack_host}:{http_port}"

    def wait_ready(self, url: str, version: str, timeout: float = 300.0) -> None:
        """Wait until a predictor answers ready; fails with its log's tail if it exits."""
        process = self.predictor_process(version)
        managed = version not in self._runtime_file()["attached"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{url}/v2/health/ready", timeout=3).status_code == 200:
                    return
            if managed and process.running_pid() is None:
                raise CanaryError(f"the predictor of version {version} exited; its log: {_tail(process.log_path)}")
            time.sleep(0.5)
        raise CanaryError(
            f"the predictor of version {version} is not ready after {timeout:.0f} s; {_tail(process.log_path)}"
        )

    def stop_predictor(self, version: str) -> None:
        self.predictor_process(version).stop()

    def ensure_splitter(self, route: Route) -> None:
        """Start the splitter with ``route`` unless ours runs; a running one is given the route instead."""
        process = self.splitter_process
        process.clear_stale()
        if process.running_pid() is not None:
            self.put_route(route)
            return
        write_route(self.paths.route, route)
        command = [
            sys.executable,
            "-m",
            "serving.canary",
            "--port",
            str(self.settings.canary_port),
            "--host",
            self.settings.stack_host,
            "--route-file",
            str(self.paths.route),
            "--model-name",
            self.settings.model_name,
            "--log-level",
            "warning",
        ]
        command += ["--collector-url", self.collector_url]
        process.start(command, self._env(), self.paths.root)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.endpoint}/v2/health/live", timeout=2).status_code == 200:
                    return
            if process.running_pid() is None:
                raise CanaryError(f"the splitter exited: {_tail(process.log_path)}")
            time.sleep(0.2)
        raise CanaryError(f"the splitter did not start on {self.endpoint}: {_tail(process.log_path)}")

    @property
    def collector_url(self) -> str:
        """Where the splitter's CloudEvents go: the configured collector, else the local stack's."""
        configured = self.settings.canary_collector_url or self.settings.collector_url
        return configured or f"http://{self.settings.stack_host}:{self.settings.collector_port}/"

    def put_route(self, route: Route) -> None:
        """Give the splitter a route (it writes its file first); with no splitter running, write the file."""
        if self.splitter_process.running_pid() is None:
            write_route(self.paths.route, route)
            return
        answer = requests.put(f"{self.endpoint}/canary/route", json=route.to_json(), timeout=10)
        if answer.status_code != 200:
            raise CanaryError(f"the splitter refused the route ({answer.status_code}): {answer.text[:300]}")

    def current_route(self) -> Route | None:
        with contextlib.suppress(requests.RequestException, ValueError, KeyError):
            if self.splitter_process.running_pid() is not None:
                return Route.from_json(requests.get(f"{self.endpoint}/canary/route", timeout=5).json())
        with contextlib.suppress(FileNotFoundError, ValueError, KeyError):
            return read_route(self.paths.route)
        return None

    def start_controller(self) -> int:
        process = self.controller_process
        process.clear_stale()
        running = process.running_pid()
        if running is not None:
            return running
        command = [sys.executable, "-m", "serving.canary.local", "run"]
        return process.start(command, self._env(), self.paths.root)

    def stop_all(self) -> list[str]:
        """Stop the controller, the splitter and every canary predictor (``fraudctl down``). Names what stopped."""
        stopped = []
        processes = [self.controller_process, self.splitter_process]
        run_dir = self.home / "run"
        if run_dir.is_dir():
            processes += [self._process(p.stem) for p in sorted(run_dir.glob("canary-predictor-v*.pid"))]
        for process in processes:
            if process.stop():
                stopped.append(process.name)
        return stopped

    # --- state ---------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Serialises every writer of the rollout's state (controller and CLI)."""
        self.paths.root.mkdir(parents=True, exist_ok=True)
        with self.paths.lock.open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def load_state(self) -> RolloutState | None:
        try:
            text = self.paths.state.read_text()
        except FileNotFoundError:
            return None
        try:
            return RolloutState.from_json(text)
        except (ValueError, KeyError, TypeError) as exc:
            raise CanaryError(
                f"unreadable rollout state {self.paths.state} ({exc}); move it away to start anew"
            ) from exc

    def save_state(self, state: RolloutState) -> None:
        _write_atomic(self.paths.state, state.to_json())

    def commit(self, state: RolloutState, action: Action) -> RolloutState:
        """Persist ``state`` (with its pending action), apply the action, persist the cleared state."""
        self.save_state(state)
        if action.kind is not ActionKind.NONE:
            self.apply(state, action)
        if state.pending_action is not None:
            state = applied(state)
            self.save_state(state)
        return state

    def finish_pending(self) -> RolloutState | None:
        """Apply an action a killed controller left pending (under the lock). Returns the current state."""
        state = self.load_state()
        if state is not None and state.pending_action is not None:
            log.info("applying the pending %s left by an interrupted run", state.pending_action.kind)
            state = self.commit(state, state.pending_action)
        return state

    # --- actions -------------------------------------------------------------------------------------------
    def apply(self, state: RolloutState, action: Action) -> None:
        """Make the action true in routing and registry; idempotent (see the module docstring)."""
        spec = state.spec
        champion, challenger = spec.champion_version, spec.challenger_version
        salt = f"rollout-v{challenger}"
        if action.kind is ActionKind.SET_WEIGHT:
            route = Route(
                Target(self.predictor_url(champion), champion),
                Target(self.predictor_url(challenger), challenger),
                weight=float(action.weight),
                shadow=action.shadow,
                salt=salt,
            )
            self.put_route(route)
        elif action.kind is ActionKind.PROMOTE:
            self.promote_in_registry(champion, challenger, action.reason)
            if self.settings.canary_crash_after == "registry":
                log.error("FRAUD_CANARY_CRASH_AFTER=registry (test only): exiting between registry and routing")
                os._exit(17)
            self.put_route(Route(Target(self.predictor_url(challenger), challenger), salt=salt))
            self.stop_predictor(champion)
        elif action.kind is ActionKind.ROLLBACK:
            self.mark_rolled_back(champion, challenger, action.reason)
            self.put_route(Route(Target(self.predictor_url(champion), champion), salt=salt))
            self.stop_predictor(challenger)
        log.info("applied %s (weight %s, shadow %s): %s", action.kind, action.weight, action.shadow, action.reason)

    def promote_in_registry(self, champion: str, challenger: str, reason: str) -> None:
        """``champion`` → the challenger's version, ``previous`` → the replaced champion; only what is not so yet."""
        from fraud.registry import CHAMPION, connect, set_alias, version_by_alias

        client = connect(self.settings)
        name = self.settings.model_name
        current = version_by_alias(client, name, CHAMPION)
        if current is not None and str(current.version) == challenger:
            # done before (an interrupted promotion being completed), or the training pipeline's offline gate
            # moved the alias already: only `previous` may be missing
            previous = version_by_alias(client, name, PREVIOUS)
            if previous is None or str(previous.version) != champion:
                set_alias(client, name, PREVIOUS, champion)
            client.set_model_version_tag(name, challenger, TAG_OUTCOME, "promoted")
            client.set_model_version_tag(name, challenger, TAG_REASON, reason[:5000])
            return
        if current is not None and str(current.version) != champion:
            raise RegistryError(
                f"alias champion of {name} points at version {current.version}, not at {champion} which this rollout "
                "compared against; someone moved it during the rollout: roll back or start a new rollout"
            )
        set_alias(client, name, PREVIOUS, champion)
        set_alias(client, name, CHAMPION, challenger)
        client.set_model_version_tag(name, challenger, TAG_OUTCOME, "promoted")
        client.set_model_version_tag(name, challenger, TAG_REASON, reason[:5000])

    def mark_rolled_back(self, champion: str, challenger: str, reason: str) -> None:
        """Keep ``champion`` on the version the rollout defended; tag the challenger with the reason.

        Only when the training pipeline's offline gate had already pointed ``champion`` at the challenger is the
        alias moved back, so that registry and routing agree again; nothing is deleted.
        """
        from fraud.registry import CHAMPION, connect, set_alias, version_by_alias

        client = connect(self.settings)
        name = self.settings.model_name
        current = version_by_alias(client, name, CHAMPION)
        if current is not None and str(current.version) == challenger:
            set_alias(client, name, CHAMPION, champion)
        client.set_model_version_tag(name, challenger, TAG_OUTCOME, "rolled_back")
        client.set_model_version_tag(name, challenger, TAG_REASON, reason[:5000])

    # --- evidence ------------------------------------------------------------------------------------------
    def collect(self) -> tuple[Window, dict[str, Any]] | None:
        """The splitter's evidence since the last take, as a `Window` (None when the window is empty in time)."""
        answer = requests.post(f"{self.endpoint}/canary/window", timeout=30)
        answer.raise_for_status()
        raw: dict[str, Any] = orjson.loads(answer.content)
        return window_from_splitter(raw), raw

    def labels_for(self, state: RolloutState, window: Window) -> LabelSample | None:
        """Labels that arrived for either arm's logged predictions and were not counted yet (None: no feed).

        The splitter's events reach the collector, which writes the inference log; labels posted to it (e.g. by
        ``fraudctl replay --labels-after``) are joined here by request id and row, per arm by model version (a
        shadow call's id carries `SHADOW_ID_SUFFIX`). Each label is counted once; a restarted controller takes
        the labels that arrived before the state's last update as counted already.
        """
        import pandas as pd

        from monitoring.inference_log import read_log
        from monitoring.labels import read_labels

        try:
            since = datetime.fromtimestamp(state.started_at - 60, UTC)
            labels = read_labels(self.settings, since)
            if labels.empty:
                return None
            until = datetime.now(UTC) + timedelta(seconds=1)
            arms: dict[str, ArmLabels] = {}
            for arm, version in (
                ("champion", state.spec.champion_version),
                ("challenger", state.spec.challenger_version),
            ):
                log_rows = read_log(self.settings, since, until, version)
                log_rows = log_rows[log_rows["score"].notna()]
                log_rows = log_rows.assign(request_id=log_rows["request_id"].str.removesuffix(SHADOW_ID_SUFFIX))
                joined = log_rows.merge(labels, on=["request_id", "row"], how="inner")
                keys = [f"{version}/{rid}/{row}" for rid, row in zip(joined["request_id"], joined["row"], strict=True)]
                if self._counted is None:  # a restarted controller: earlier labels were folded in already
                    self._counted = set()
                    self._counted_cutoff = state.updated_at
                cutoff = pd.Timestamp(self._counted_cutoff, unit="s", tz="UTC")
                fresh = [
                    key not in self._counted and labeled_at > cutoff
                    for key, labeled_at in zip(keys, joined["labeled_at"], strict=True)
                ]
                new = joined[fresh]
                self._counted.update(key for key, keep in zip(keys, fresh, strict=True) if keep)
                arms[arm] = ArmLabels(
                    y_true=new["isFraud"].to_numpy(dtype=np.int8), scores=new["score"].to_numpy(dtype=np.float64)
                )
            return LabelSample(champion=arms["champion"], challenger=arms["challenger"])
        except Exception as exc:  # an optional feed (store, Parquet, pandas errors): never stop the rollout for it
            log.warning("labels not read this window (%s: %s); the label check waits", type(exc).__name__, exc)
            return None

    def record_window(self, state: RolloutState, window: Window, raw: dict[str, Any]) -> None:
        """One line of the report's timeline: the window, the phase and weight after it, the checks."""
        line = {
            "time": window.end,
            "phase": str(state.phase),
            "weight": state.weight,
            "window": window.summary(),
            "checks": state.checks,
            "scores": {
                arm: np.histogram(np.asarray(raw[arm]["scores"], dtype=float), bins=SCORE_BINS)[0].tolist()
                for arm in ("champion", "challenger")
            },
        }
        with self.paths.windows.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(line) + "\n")

    def publish_report(self, state: RolloutState) -> ReportLocations:
        """Write the rollout's report (local, object store, challenger's MLflow run); says where."""
        return publish_report(
            self.settings, state, windows_path=self.paths.windows, local=self.paths.report_dir, endpoint=self.endpoint
        )

    # --- one look ------------------------------------------------------------------------------------------
    def step(self) -> RolloutState | None:
        """One analysis look under the lock: finish a pending action, judge the latest window, act on it."""
        with self.locked():
            state = self.finish_pending()
            if state is None or state.terminal:
                return state
            if self.splitter_process.running_pid() is None:  # clients need it more than the analysis does
                log.warning("the splitter is not running; starting it again with its last route")
                self.ensure_splitter(read_route(self.paths.route))
            collected = self.collect()
            if collected is None:
                return state
            window, raw = collected
            window = replace(window, labels=self.labels_for(state, window))
            state, action = reconcile(state, window, time.time())
            self.record_window(state, window, raw)
            return self.commit(state, action)

    def command(self, command: str) -> RolloutState:
        """``promote`` / ``rollback`` / ``pause`` / ``resume`` by hand, applied at once under the lock."""
        with self.locked():
            state = self.finish_pending()
            if state is None:
                raise CanaryError("no rollout has been started here; run `fraudctl canary start`")
            state, action = manual(state, command, time.time())  # type: ignore[arg-type]
            return self.commit(state, action)


def window_from_splitter(raw: dict[str, Any]) -> Window:
    """The splitter's ``/canary/window`` answer as the analysis's `Window`."""

    def arm(name: str) -> ArmSample:
        part = raw[name]
        return ArmSample.from_answers(
            latencies_ms=part["latencies_ms"], failed=part["failed"], scores=part["scores"], decisions=part["decisions"]
        )

    shadow = bool(raw["shadow"])
    pairs = raw["pairs"]
    end = max(float(raw["end"]), float(raw["start"]) + 1e-6)
    return Window(
        start=float(raw["start"]),
        end=end,
        champion=arm("champion"),
        challenger=arm("challenger"),
        expected_challenger_share=0.0 if shadow else float(raw["weight"]) / 100.0,
        shadow=shadow,
        paired_scores=(np.asarray(pairs["champion_scores"]), np.asarray(pairs["challenger_scores"]))
        if shadow
        else None,
        paired_decisions=(np.asarray(pairs["champion_decisions"]), np.asarray(pairs["challenger_decisions"]))
        if shadow
        else None,
    )


def _tail(path: Path, lines: int = 8) -> str:
    """The last lines of a server log that say something (probe lines left out)."""
    try:
        text = path.read_text(errors="replace").splitlines()
        return "\n".join([line for line in text if "/health/" not in line][-lines:])
    except OSError:
        return f"(no log at {path})"


# --------------------------------------------------------------------------------------------- start


@dataclass(frozen=True)
class Started:
    state: RolloutState
    endpoint: str
    controller_pid: int


def resolve_versions(
    settings: Settings, version: str | None, alias: str | None, champion_version: str | None = None
) -> tuple[str, str]:
    """(champion, challenger) versions: ``champion_version`` or the champion alias, and ``version`` or the alias
    (default challenger).

    Raises:
        CanaryError: no champion, no such challenger, or both are the same version.
    """
    from fraud.registry import CHALLENGER, CHAMPION, connect, version_by_alias

    client = connect(settings)
    name = settings.model_name
    champion: ModelVersion | None
    if champion_version is not None:
        try:
            champion = client.get_model_version(name, champion_version)
        except Exception as exc:  # MLflow raises its own exception types for a missing version
            raise CanaryError(f"{name} has no version {champion_version} to compare against") from exc
    else:
        champion = version_by_alias(client, name, CHAMPION)
    if champion is None:
        raise CanaryError(f"{name} has no champion version to compare against; register one (`fraudctl pipeline run`)")
    if version is not None:
        challenger = version
        try:
            client.get_model_version(name, version)
        except Exception as exc:
            raise CanaryError(f"{name} has no version {version}") from exc
    else:
        found = version_by_alias(client, name, alias or CHALLENGER)
        if found is None:
            raise CanaryError(f"{name} has no alias '{alias or CHALLENGER}'; give --version N")
        challenger = str(found.version)
    if challenger == str(champion.version):
        raise CanaryError(
            f"version {challenger} already is the champion; train a new version first (`fraudctl pipeline run`), "
            "or give --champion-version N to roll it out against an older version"
        )
    return str(champion.version), challenger


def start_rollout(runtime: LocalRuntime, spec: RolloutSpec, emit: Emit) -> Started:
    """Start what is missing (predictors, splitter, controller) and begin the rollout; returns once it runs.

    Raises:
        CanaryError: a rollout is already running (stop it with `fraudctl canary rollback` first).
    """
    with runtime.locked():
        existing = runtime.finish_pending()
        if existing is not None and not existing.terminal:
            if runtime.controller_process.running_pid() is not None:
                raise CanaryError(
                    f"a rollout of version {existing.spec.challenger_version} is {existing.phase} at "
                    f"{existing.weight} %; see `fraudctl canary status`, or end it with `fraudctl canary rollback` / "
                    "`promote`"
                )
            emit(f"resuming the interrupted rollout of v{existing.spec.challenger_version} ({existing.phase})")
            resume = existing
        else:
            resume = None
    if resume is not None:
        return _resume(runtime, resume, emit)
    with runtime.locked():
        emit(f"starting predictors of v{spec.champion_version} (champion) and v{spec.challenger_version} (challenger)")
        champion_url = runtime.ensure_predictor(spec.champion_version)
        challenger_url = runtime.ensure_predictor(spec.challenger_version)
        try:
            runtime.wait_ready(champion_url, spec.champion_version)
            runtime.wait_ready(challenger_url, spec.challenger_version)
        except CanaryError:
            runtime.stop_predictor(spec.challenger_version)  # the champion's may serve the splitter already
            raise
        emit(f"splitter on {runtime.endpoint}")
        runtime.ensure_splitter(Route(Target(champion_url, spec.champion_version)))
        runtime.paths.windows.unlink(missing_ok=True)
        (runtime.paths.report_dir / "locations.json").unlink(missing_ok=True)  # that report was of the last one
        state, action = start(spec, time.time())
        state = runtime.commit(state, action)
    pid = runtime.start_controller()
    emit(f"controller running (pid {pid}); rollout {state.phase} at {state.weight} %")
    return Started(state, runtime.endpoint, pid)


def _resume(runtime: LocalRuntime, state: RolloutState, emit: Emit) -> Started:
    """Bring back what a stopped machine lost (predictors, splitter) and restart the controller where it was."""
    spec = state.spec
    for version in (spec.champion_version, spec.challenger_version):
        runtime.wait_ready(runtime.ensure_predictor(version), version)
    runtime.ensure_splitter(Route(Target(runtime.predictor_url(spec.champion_version), spec.champion_version)))
    # routing as the state says, with the predictors' current addresses (a restarted one has a new port)
    with runtime.locked():
        runtime.apply(state, Action(ActionKind.SET_WEIGHT, state.weight, shadow=state.shadow, reason="resumed"))
    pid = runtime.start_controller()
    emit(f"controller running again (pid {pid}); rollout {state.phase} at {state.weight} %")
    return Started(state, runtime.endpoint, pid)


# --------------------------------------------------------------------------------------------- controller


def run_controller(runtime: LocalRuntime, *, interval: float | None = None) -> RolloutState | None:
    """Judge a window every interval until the rollout ends; then write the report. Returns the final state."""
    every = interval or runtime.settings.canary_interval_seconds
    stopping = False

    def stop(signum: int, _: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    state = None
    while not stopping:
        try:
            state = runtime.step()
        except (requests.RequestException, FraudError) as exc:
            log.warning("analysis look failed (%s); trying again in %.0f s", exc, every)
            time.sleep(every)
            continue
        if state is None:
            log.error("no rollout state at %s; nothing to control", runtime.paths.state)
            return None
        log.info("phase %s, weight %s %%, checks %s", state.phase, state.weight, state.summary()["checks"])
        if state.terminal:
            break
        time.sleep(every)
    if state is not None and state.terminal:
        # Stopped while writing the report (`fraudctl down`), it stops at once: `fraudctl canary report` writes a
        # missing report on demand, and nothing else is left to do.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        try:
            locations = runtime.publish_report(state)
            log.info("report written: %s", locations.to_json())
        except Exception:  # the rollout is over either way; say why the report is missing
            log.exception("could not write the rollout report")
    return state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.canary.local", description="Local rollout controller.")
    parser.add_argument("command", choices=["run"], help="run: judge windows until the rollout ends")
    parser.add_argument(
        "--interval", type=float, default=None, help="Seconds between looks (FRAUD_CANARY_INTERVAL_SECONDS)."
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    runtime = LocalRuntime(load_settings())
    state = run_controller(runtime, interval=args.interval)
    return 0 if state is not None else 1


if __name__ == "__main__":
    sys.exit(main())
