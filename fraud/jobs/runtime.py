"""What every pipeline step does first, whether run by kfp.local, a cluster or a test, and how it fails."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fraud.artifacts import write_failure
from fraud.registry import connect
from fraud.settings import Settings, load_settings

log = logging.getLogger(__name__)


def start_step(name: str) -> Settings:
    """Configure logging for this step's process (an entrypoint) and read the settings from its environment.

    The environment is the step's whole configuration: the local runner hands each step exactly the settings it
    was given (`fraud.settings.Settings.environment`), a cluster the chart's ConfigMap and Secret.
    """
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s {name} %(levelname)s %(name)s: %(message)s",
        stream=sys.stdout,
        force=True,
    )
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer", "alembic", "git"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # fraud.tuning logs one line per trial itself; Optuna's own INFO line would repeat it.
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return load_settings()


@contextmanager
def reporting_failure(settings: Settings, step: str, *, output: Path, run_id: str | None) -> Iterator[None]:
    """Let an error escape the step, after recording it: a failure record beside ``output`` (for the runner) and,
    once the pipeline's MLflow run exists, that run marked FAILED with the step and the reason."""
    try:
        yield
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        write_failure(output, step, reason)
        if run_id:
            mark_run_failed(settings, run_id, step, reason)
        raise


def mark_run_failed(settings: Settings, run_id: str, step: str, reason: str) -> None:
    """A failed pipeline leaves its MLflow run marked FAILED, with the step and reason, and registers nothing."""
    try:
        client = connect(settings)
        client.set_tag(run_id, "failed_step", step)
        client.set_tag(run_id, "failure_reason", reason[:5000])
        client.set_terminated(run_id, "FAILED")
    except Exception:  # the step's own error matters more than bookkeeping about it
        log.warning("could not mark MLflow run %s as failed", run_id, exc_info=True)
