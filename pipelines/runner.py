"""Run, compile and submit the training pipeline.

`run_local` executes the pipeline through `kfp.local` (SubprocessRunner in this environment) against the local
stack and reads its results from the run's outputs (the MLflow run id and the registered version the pipeline
returns) and from that MLflow run; a failed step leaves a failure record in the run's artifact directory
(`fraud.jobs.runtime.read_failure`). KFP's log stream only feeds the live progress (a step started or finished,
and how long it took) and the log file. `compile_pipeline` writes the YAML a KFP cluster takes; `submit` sends
it with `kfp.Client` (needs a cluster: not exercised on machines without one).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from fraud.artifacts import read_failure
from fraud.errors import PipelineError
from fraud.params import TrainingParams
from fraud.registry import connect
from fraud.settings import Settings

log = logging.getLogger(__name__)

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_STARTED = re.compile(r"Executing task '?([\w-]+)'?")
_FINISHED = re.compile(r"Task '?([\w-]+)'? finished with status (\w+)")
# the line `fraud.tuning.objective` logs after each trial, so a long tune step shows progress, not a bare spinner
_TRIAL = re.compile(r"fraud\.tuning\.objective: (trial \d+ \w+ \w+ value=\S+ \([\d.]+s\))")


@dataclass(frozen=True)
class StepEvent:
    step: str
    state: Literal["started", "progress", "succeeded", "failed"]
    seconds: float = 0.0
    detail: str = ""
    """For ``progress``: what the step reported (a finished tuning trial)."""


EventFn = Callable[[StepEvent], None]


@dataclass
class _StepTracker:
    """Reads KFP's local log stream line by line for live progress (step boundaries, durations) into the log file."""

    log_file: io.TextIOBase
    on_event: EventFn | None
    echo: bool
    current: str | None = None
    started_at: float = 0.0
    durations: dict[str, float] = field(default_factory=dict)
    failed: str | None = None
    _partial: str = ""

    def write(self, text: str) -> int:
        self.log_file.write(text)
        if self.echo:
            sys.__stdout__.write(text) if sys.__stdout__ else None
        self._partial += text
        *lines, self._partial = self._partial.split("\n")
        for line in lines:
            self._line(_ANSI.sub("", line))
        return len(text)

    def flush(self) -> None:
        self.log_file.flush()

    def _emit(self, event: StepEvent) -> None:
        if self.on_event:
            self.on_event(event)

    def _line(self, line: str) -> None:
        finished = _FINISHED.search(line)
        if finished:
            step, status = finished.group(1), finished.group(2)
            seconds = time.monotonic() - self.started_at
            self.durations[step] = seconds
            ok = status.upper() == "SUCCESS"
            if not ok:
                self.failed = step
            self._emit(StepEvent(step, "succeeded" if ok else "failed", seconds))
            self.current = None
            return
        trial = _TRIAL.search(line)
        if trial and self.current:
            self._emit(StepEvent(self.current, "progress", time.monotonic() - self.started_at, trial.group(1)))
            return
        started = _STARTED.search(line)
        if started:
            self.current = started.group(1)
            self.started_at = time.monotonic()
            self._emit(StepEvent(self.current, "started"))


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Child processes (the steps) read their settings from the environment: hand ours down, then restore."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@dataclass(frozen=True)
class PipelineOutcome:
    run_id: str
    run_name: str
    version: str
    aliases: list[str]
    promoted: bool
    gate_reason: str
    metrics: dict[str, float]
    durations: dict[str, float]
    log_path: Path
    run_url: str
    model_url: str
    feature_set: str
    model_family: str
    notes: list[str]


def run_local(
    settings: Settings,
    params: TrainingParams | Mapping[str, Any],
    *,
    on_event: EventFn | None = None,
    echo: bool = False,
) -> PipelineOutcome:
    """Execute the training pipeline with `kfp.local` against the stack ``settings`` name, and summarise the run.

    The steps run as child processes whose environment is exactly ``settings`` (`Settings.environment`), so a
    setting given here (a bucket, the model name, the experiment) is the one every step uses. The summary is read
    from the run's own outputs (the MLflow run id and the version the pipeline returns) and from that MLflow run,
    so runs started at the same time against the same stack each report their own. One run at a time per process
    (`kfp.local` keeps its configuration, and this function the process environment, globally).

    Raises:
        ConfigError: a parameter is out of range (the message names it).
        PipelineError: naming the failed step and its reason, with the path of the full log.
    """
    from kfp import local

    from pipelines.training import build_pipeline

    chosen = params if isinstance(params, TrainingParams) else TrainingParams.parse(params)
    pipeline = build_pipeline(settings.image)
    stamp = f"{datetime.now(UTC).strftime('%Y%m%d-%H%M%S-%f')}-{os.getpid()}"
    runs_dir = settings.home_dir / "pipeline-runs"
    run_root = runs_dir / "artifacts" / stamp
    run_root.mkdir(parents=True, exist_ok=True)
    log_path = runs_dir / f"fraud-training-{stamp}.log"
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(run_root), raise_on_error=True)
    started = time.monotonic()
    with log_path.open("w") as log_file, _environment(settings.environment()), warnings.catch_warnings():
        # kfp.local warns that the project image is not a stock Python image; here the steps run in this very
        # environment, which is what that image holds.
        warnings.filterwarnings("ignore", message=".*custom or non-Python base image.*", category=RuntimeWarning)
        tracker = _StepTracker(log_file=log_file, on_event=on_event, echo=echo)
        try:
            with contextlib.redirect_stdout(tracker):
                task = pipeline(**chosen.arguments())
        except Exception as exc:
            failure = read_failure(run_root)
            step = failure.step if failure else (tracker.failed or tracker.current or "pipeline")
            reason = failure.reason if failure else str(exc)
            raise PipelineError(f"step '{step}' failed: {reason} (full log: {log_path})") from exc
    log.info("pipeline finished in %.1f s", time.monotonic() - started)
    return summarise(settings, task.outputs, tracker.durations, log_path)


def summarise(
    settings: Settings, outputs: Mapping[str, Any], durations: dict[str, float], log_path: Path
) -> PipelineOutcome:
    """The run's outcome: the version and aliases its register step returned, the rest from its own MLflow run."""
    run_id, version = str(outputs.get("run_id") or ""), str(outputs.get("version") or "")
    if not run_id or not version:
        raise PipelineError(f"the pipeline finished but returned no run id or model version (full log: {log_path})")
    client = connect(settings)
    found = client.get_run(run_id)
    tags = found.data.tags
    if tags.get("registered_version") != version:
        raise PipelineError(
            f"MLflow run {run_id} records version {tags.get('registered_version')!r}, the pipeline returned "
            f"{version!r} (full log: {log_path})"
        )
    base = settings.tracking_uri.rstrip("/")
    return PipelineOutcome(
        run_id=run_id,
        run_name=found.info.run_name,
        version=version,
        aliases=sorted(alias for alias in str(outputs.get("aliases", "")).split(",") if alias),
        promoted=bool(outputs.get("promoted")),
        gate_reason=tags.get("gate_reason", ""),
        metrics=dict(found.data.metrics),
        durations=durations,
        log_path=log_path,
        run_url=f"{base}/#/experiments/{found.info.experiment_id}/runs/{run_id}",
        model_url=f"{base}/#/models/{settings.model_name}/versions/{version}",
        feature_set=found.data.params.get("feature_set", ""),
        model_family=tags.get("model_family", ""),
        notes=[tags["feature_set_note"]] if "feature_set_note" in tags else [],
    )


def compile_pipeline(settings: Settings, output: Path) -> Path:
    """Write the pipeline YAML that a Kubeflow Pipelines cluster runs, every step on ``settings.image``."""
    from kfp import compiler

    from pipelines.training import build_pipeline

    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build_pipeline(settings.image), str(output))
    return output


def submit(
    settings: Settings,
    host: str,
    package: Path,
    params: TrainingParams,
    experiment: str,
    run_name: str | None = None,
    pipeline_root: str | None = None,
) -> str:
    """Send a compiled pipeline to a KFP cluster; returns the run id. Needs a reachable cluster.

    The run's artifacts go to ``pipeline_root``, by default ``s3://<FRAUD_PIPELINE_BUCKET>/pipeline-root`` in the
    platform's MinIO (`pipelines.platform.pipeline_root`). It is set per run rather than compiled into the YAML:
    the compiled package stays portable (a KFP UI upload uses the cluster's default root), and the bucket follows
    the same setting every other step reads. The KFP launcher resolves ``s3://`` roots to MinIO through the
    ``providers`` entry that ``manifests/kubeflow-pipelines`` adds to its ``kfp-launcher`` ConfigMap.
    """
    import kfp

    from pipelines.platform import pipeline_root as default_root

    client = kfp.Client(host=host)
    result = client.create_run_from_pipeline_package(
        str(package),
        arguments=params.arguments(),
        experiment_name=experiment,
        run_name=run_name,
        pipeline_root=pipeline_root or default_root(settings),
    )
    return str(result.run_id)
