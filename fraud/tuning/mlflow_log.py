"""The study in MLflow: one child run per trial under the pipeline's run, and the study's summary on that run."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from fraud.tuning.config import AP_METRIC, ARTIFACT_DIR, STAGED_AP_METRIC, STATE_TAG, TuneResult

if TYPE_CHECKING:
    from mlflow import MlflowClient

logger = logging.getLogger(__name__)


class MlflowLog:
    """Child runs per trial and the study summary on the parent run, through `MlflowClient`.

    The client (rather than ``mlflow.start_run(nested=True, parent_run_id=…)``) creates exactly the same child
    runs (tag ``mlflow.parentRunId``) without touching the fluent API's process-global active-run stack: it
    works whether or not the caller has the parent run active, does not consume ``MLFLOW_RUN_ID``, and puts the
    children in the parent's experiment so the UI nests them.
    """

    def __init__(self, parent_run_id: str, study_name: str) -> None:
        from mlflow import MlflowClient

        self.client: MlflowClient = MlflowClient()
        self.parent_run_id = parent_run_id
        self.study_name = study_name
        parent = self.client.get_run(parent_run_id)
        self.experiment_id = parent.info.experiment_id

    def start(self, number: int, family: str) -> str:
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

        run = self.client.create_run(
            self.experiment_id,
            run_name=f"trial-{number:03d}-{family}",
            tags={
                MLFLOW_PARENT_RUN_ID: self.parent_run_id,
                "optuna.study_name": self.study_name,
                "optuna.trial_number": str(number),
                "fraud.family": family,
            },
        )
        return str(run.info.run_id)

    def finish(
        self,
        run_id: str,
        *,
        state: str,
        family: str,
        params: Mapping[str, Any],
        value: float | None,
        steps: Sequence[tuple[int, float]],
        duration_s: float,
        note: str | None,
    ) -> None:
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        metrics = [Metric(STAGED_AP_METRIC, float(v), now, int(s)) for s, v in steps]
        if value is not None:
            metrics.append(Metric(AP_METRIC, float(value), now, 0))
        metrics.append(Metric("duration_s", float(duration_s), now, 0))
        tags = [RunTag(STATE_TAG, state)]
        if note:
            tags.append(RunTag("fraud.trial_note", note[:5000]))
        log_params = [Param("family", family)] + [Param(k, str(v)) for k, v in params.items()]
        self.client.log_batch(run_id, metrics=metrics, params=log_params, tags=tags)
        status = {"COMPLETE": "FINISHED", "PRUNED": "KILLED"}.get(state, "FAILED")
        self.client.set_terminated(run_id, status=status)

    def summary(self, result: TuneResult | None, counts: Mapping[str, int], rate: float, rows: int) -> None:
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.exceptions import MlflowException

        now = int(time.time() * 1000)
        metrics = [Metric(f"tune.n_{k}", float(v), now, 0) for k, v in counts.items()]
        metrics += [Metric("tune.negative_sample_rate", rate, now, 0), Metric("tune.tuning_rows", rows, now, 0)]
        tags = [RunTag("tune.study_name", self.study_name)]
        if result is not None:
            metrics.append(Metric(f"tune.best_{AP_METRIC}", result.best_value, now, 0))
            tags.append(RunTag("tune.best_trial", str(result.best_trial)))
        self.client.log_batch(self.parent_run_id, metrics=metrics, tags=tags)
        if result is None:
            return
        params = [Param("tune.best_family", result.family)]
        params += [Param(f"tune.best.{k}", str(v)) for k, v in result.params.items()]
        try:
            self.client.log_batch(self.parent_run_id, params=params)
        except MlflowException as exc:
            # Params are immutable: a second tune into the same parent (another worker) records tags instead.
            logger.warning(
                "best parameters already logged on run %s (%s); logging them as tags", self.parent_run_id, exc
            )
            self.client.log_batch(self.parent_run_id, tags=[RunTag(p.key, p.value) for p in params])
        for figure in result.figures:
            self.client.log_artifact(self.parent_run_id, str(figure), artifact_path=ARTIFACT_DIR)
