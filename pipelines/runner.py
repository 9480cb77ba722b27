"""Run, compile and submit the training pipeline.

`run_local` executes the pipeline through `kfp.local` (SubprocessRunner in this environment) against the local
stack, turning KFP's log stream into per-step events and a log file; `compile_pipeline` writes the YAML a KFP
cluster takes; `submit` sends it with `kfp.Client` (needs a cluster: not exercised on machines without one).
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from fraud.errors import PipelineError
from fraud.registry import connect, experiment_id
from fraud.settings import Settings

log = logging.getLogger(__name__)

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_STARTED = re.compile(r"Executing task '?([\w-]+)'?")
_FINISHED = re.compile(r"Task '?([\w-]+)'? finished with status (\w+)")
_ERROR_LINE = re.compile(r"^\s*([A-Za-z_][\w.]*(?:Error|Exception)): (.+)$")


@dataclass(frozen=True)
class StepEvent:
    step: str
    state: Literal["started", "succeeded", "failed"]
    seconds: float = 0.0


EventFn = Callable[[StepEvent], None]


@dataclass
class _StepTracker:
    """Reads KFP's local log stream line by line: step boundaries, each step's own output, the log file."""

    log_file: io.TextIOBase
    on_event: EventFn | None
    echo: bool
    current: str | None = None
    started_at: float = 0.0
    output: dict[str, list[str]] = field(default_factory=dict)
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
        started = _STARTED.search(line)
        if started:
            self.current = started.group(1)
            self.started_at = time.monotonic()
            self.output[self.current] = []
            self._emit(StepEvent(self.current, "started"))
            return
        if self.current:
            self.output[self.current].append(line)

    def reason(self, step: str) -> str:
        """The last exception line the failed step printed (its traceback's verdict)."""
        for line in reversed(self.output.get(step, [])):
            match = _ERROR_LINE.match(line)
            if match:
                return f"{match.group(1).rsplit('.', 1)[-1]}: {match.group(2)}"
        tail = [line.strip() for line in self.output.get(step, []) if line.strip()]
        return tail[-1] if tail else "no output"


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


def _find_run(settings: Settings, since_ms: int) -> Any | None:
    client = connect(settings)
    runs = client.search_runs(
        [experiment_id(settings)],
        filter_string=f"tags.pipeline = 'fraud-training' and attributes.start_time >= {since_ms}",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0] if runs else None


def _mark_failed(settings: Settings, since_ms: int, step: str, reason: str) -> None:
    """A failed pipeline leaves its MLflow run marked FAILED, with the step and reason, and registers nothing."""
    try:
        found = _find_run(settings, since_ms)
        if found is None:
            return
        client = connect(settings)
        client.set_tag(found.info.run_id, "failed_step", step)
        client.set_tag(found.info.run_id, "failure_reason", reason[:5000])
        client.set_terminated(found.info.run_id, "FAILED")
    except Exception:  # the pipeline error matters more than bookkeeping about it
        log.warning("could not mark the MLflow run as failed", exc_info=True)


def run_local(
    settings: Settings,
    arguments: dict[str, Any],
    *,
    on_event: EventFn | None = None,
    echo: bool = False,
) -> PipelineOutcome:
    """Execute the training pipeline with `kfp.local` against the local stack and summarise the result.

    Raises:
        PipelineError: naming the failed step and its reason, with the path of the full log.
    """
    from kfp import local

    from pipelines.training import training_pipeline

    runs_dir = settings.home_dir / "pipeline-runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    log_path = runs_dir / f"fraud-training-{stamp}.log"
    since_ms = int(time.time() * 1000) - 1000
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(runs_dir / "artifacts"),
        raise_on_error=True,
    )
    started = time.monotonic()
    with log_path.open("w") as log_file, _environment(settings.server_env()), warnings.catch_warnings():
        # kfp.local warns that the project image is not a stock Python image; here the steps run in this very
        # environment, which is what that image holds.
        warnings.filterwarnings("ignore", message=".*custom or non-Python base image.*", category=RuntimeWarning)
        tracker = _StepTracker(log_file=log_file, on_event=on_event, echo=echo)
        try:
            with contextlib.redirect_stdout(tracker):
                training_pipeline(**arguments)
        except Exception as exc:
            step = tracker.failed or tracker.current or "pipeline"
            reason = tracker.reason(step) if step in tracker.output else str(exc)
            _mark_failed(settings, since_ms, step, reason)
            raise PipelineError(f"step '{step}' failed: {reason} (full log: {log_path})") from exc
    log.info("pipeline finished in %.1f s", time.monotonic() - started)
    return summarise(settings, since_ms, tracker.durations, log_path)


def summarise(settings: Settings, since_ms: int, durations: dict[str, float], log_path: Path) -> PipelineOutcome:
    """Read the registered version, its aliases and headline metrics back from MLflow."""
    found = _find_run(settings, since_ms)
    if found is None or "registered_version" not in found.data.tags:
        raise PipelineError(f"the pipeline finished but registered no model version (full log: {log_path})")
    client = connect(settings)
    tags = found.data.tags
    version = tags["registered_version"]
    model_version = client.get_model_version(settings.model_name, version)
    base = settings.tracking_uri.rstrip("/")
    spec_notes = [tags["feature_set_note"]] if "feature_set_note" in tags else []
    return PipelineOutcome(
        run_id=found.info.run_id,
        run_name=found.info.run_name,
        version=version,
        aliases=sorted(model_version.aliases),
        promoted=tags.get("gate_decision") == "promoted",
        gate_reason=tags.get("gate_reason", ""),
        metrics=dict(found.data.metrics),
        durations=durations,
        log_path=log_path,
        run_url=f"{base}/#/experiments/{found.info.experiment_id}/runs/{found.info.run_id}",
        model_url=f"{base}/#/models/{settings.model_name}/versions/{version}",
        feature_set=found.data.params.get("feature_set", ""),
        model_family=tags.get("model_family", ""),
        notes=spec_notes,
    )


def compile_pipeline(output: Path) -> Path:
    """Write the pipeline YAML that a Kubeflow Pipelines cluster runs."""
    from kfp import compiler

    from pipelines.training import training_pipeline

    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(training_pipeline, str(output))
    return output


def submit(
    host: str,
    package: Path,
    arguments: dict[str, Any],
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

    from fraud.settings import get_settings
    from pipelines.platform import pipeline_root as default_root

    client = kfp.Client(host=host)
    result = client.create_run_from_pipeline_package(
        str(package),
        arguments=arguments,
        experiment_name=experiment,
        run_name=run_name,
        pipeline_root=pipeline_root or default_root(get_settings()),
    )
    return str(result.run_id)
