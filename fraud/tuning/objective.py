"""The study's objective: one trial = one family, its parameters, a staged fit and its MLflow child run.

It keeps the best model this process has fitted (one model at a time), for the study to return, and turns
Optuna's trials into `TrialSummary` records.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Final

import optuna

from fraud.families.base import NativeModel, Stopped
from fraud.tuning.config import TrialSummary, TuneConfig
from fraud.tuning.mlflow_log import MlflowLog
from fraud.tuning.search_space import suggest_family, suggest_params
from fraud.tuning.trainer import StudyData, TrialReporter, fit_model

logger = logging.getLogger(__name__)

UA_MODEL_PARAMS: Final = "model_params"
UA_STEPS: Final = "steps"
UA_DURATION: Final = "duration_s"
UA_RUN_ID: Final = "mlflow_run_id"
UA_STOPPED: Final = "stopped"
UA_ERROR: Final = "error"


def summarise(trial: optuna.trial.FrozenTrial) -> TrialSummary:
    attrs = trial.user_attrs
    value = trial.value
    if value is None and trial.intermediate_values:
        value = trial.intermediate_values[max(trial.intermediate_values)]
    duration = attrs.get(UA_DURATION)
    if duration is None and trial.duration is not None:
        duration = trial.duration.total_seconds()
    return TrialSummary(
        number=trial.number,
        family=trial.params.get("family"),
        state=trial.state.name,
        value=None if value is None else float(value),
        params=dict(attrs.get(UA_MODEL_PARAMS, {})),
        duration_s=None if duration is None else float(duration),
        steps=[(int(s), float(v)) for s, v in attrs.get(UA_STEPS, [])],
        stopped=attrs.get(UA_STOPPED),
        mlflow_run_id=attrs.get(UA_RUN_ID),
        error=attrs.get(UA_ERROR),
    )


class Objective:
    """The study's objective: one trial = one family, its parameters, a staged fit and its MLflow child run.

    It also keeps the best model this process has fitted (one model at a time), for `tune` to return.
    """

    def __init__(
        self,
        trainer: StudyData,
        config: TuneConfig,
        deadline: float | None,
        mlflow_log: MlflowLog | None,
        on_trial: Callable[[TrialSummary], None] | None,
    ) -> None:
        self.trainer = trainer
        self.config = config
        self.deadline = deadline
        self.mlflow_log = mlflow_log
        self.on_trial = on_trial
        self.kept_number: int | None = None
        self.kept_value = -math.inf
        self.kept_model: NativeModel | None = None

    def __call__(self, trial: optuna.Trial) -> float:
        begun = time.monotonic()
        family = suggest_family(trial, self.config.families)
        params = suggest_params(trial, family, self.config.max_rounds)
        run_id = self.mlflow_log.start(trial.number, family) if self.mlflow_log else None
        if run_id:
            trial.set_user_attr(UA_RUN_ID, run_id)
        reporter = TrialReporter(trial, self.deadline)
        state, value, note, fitted = "COMPLETE", None, None, dict(params)
        try:
            outcome = self.trainer.train(family, params, reporter)
            value, fitted = outcome.value, outcome.params
            if outcome.stopped:
                trial.set_user_attr(UA_STOPPED, outcome.stopped)
            if value > self.kept_value:
                self.kept_number, self.kept_value, self.kept_model = trial.number, value, outcome.model
            return value
        except Stopped as stop:
            state, note = "PRUNED", stop.reason
            trial.set_user_attr(UA_STOPPED, stop.reason)
            value = reporter.steps[-1][1] if reporter.steps else None
            raise optuna.TrialPruned(stop.reason) from None
        except Exception as exc:
            state, note = "FAIL", f"{type(exc).__name__}: {exc}"
            trial.set_user_attr(UA_ERROR, note)
            raise
        finally:
            duration = time.monotonic() - begun
            trial.set_user_attr(UA_MODEL_PARAMS, fitted)
            trial.set_user_attr(UA_STEPS, [[s, v] for s, v in reporter.steps])
            trial.set_user_attr(UA_DURATION, duration)
            if self.mlflow_log and run_id:
                self.mlflow_log.finish(
                    run_id,
                    state=state,
                    family=family,
                    params=fitted,
                    value=value,
                    steps=reporter.steps,
                    duration_s=duration,
                    note=note,
                )

    def done(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """Optuna callback after each trial: log it and tell the caller."""
        summary = summarise(trial)
        logger.info(
            "trial %d %s %s value=%s (%.1fs)",
            summary.number,
            summary.family,
            summary.state,
            "-" if summary.value is None else f"{summary.value:.4f}",
            summary.duration_s or 0.0,
        )
        if self.on_trial is not None:
            self.on_trial(summary)


def best_model(best: optuna.trial.FrozenTrial, objective: Objective, trainer: StudyData) -> tuple[NativeModel, bool]:
    """The best trial's model: the one kept in memory, or (best trial from another worker) a refit of it."""
    if objective.kept_number == best.number and objective.kept_model is not None:
        return objective.kept_model, False
    logger.info("best trial %d ran in another worker: refitting its parameters once", best.number)
    config = trainer.config
    model = fit_model(
        str(best.params["family"]),
        dict(best.user_attrs.get(UA_MODEL_PARAMS, {})),
        trainer.tuning.X,
        trainer.tuning.y,
        feature_names=trainer.feature_names,
        sample_weight=trainer.tuning.weight,
        reference=trainer.reference,
        seed=config.seed,
        n_jobs=config.n_jobs,
    )
    check = trainer.final_ap(model)
    if not math.isclose(check, float(best.value or 0.0), rel_tol=1e-6, abs_tol=1e-9):
        logger.warning(
            "refitted best trial %d scores AP %.6f, the study recorded %.6f (different data or library version?)",
            best.number,
            check,
            best.value,
        )
    return model, True
