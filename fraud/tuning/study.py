"""The study runner: open (or join) the Optuna study, run the trials, pick the best model, draw the figures."""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import optuna

from fraud.tuning.config import ARTIFACT_DIR, TrialSummary, TuneConfig, TuneResult, TuningError
from fraud.tuning.mlflow_log import MlflowLog
from fraud.tuning.objective import UA_MODEL_PARAMS, Objective, best_model, summarise
from fraud.tuning.sampling import sample_negatives
from fraud.tuning.trainer import StudyData

logger = logging.getLogger(__name__)


def open_storage(storage: str | None) -> str | optuna.storages.BaseStorage | None:
    """None (in memory), a database URL as is, or a journal file path wrapped in a `JournalStorage`."""
    if storage is None or "://" in storage:
        return storage
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = Path(storage)
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


_FAMILIES_ATTR: Final = "fraud.families"


def _open_study(config: TuneConfig) -> optuna.Study:
    """Create the study, or join the one of that name in ``storage`` (which must search the same families).

    The median pruner waits for 5 complete trials and never prunes at a trial's first report (warm-up of two
    reports): early AP is noisy and slow learning rates start low.
    """
    storage = open_storage(config.storage)
    study = optuna.create_study(
        storage=storage,
        sampler=_sampler(config, config.n_trials or 10, existing=_existing_trials(storage, config.study_name)),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2 * config.report_every),
        study_name=config.study_name,
        direction="maximize",
        load_if_exists=True,
    )
    _check_study_families(study, config)
    return study


def _existing_trials(storage: str | optuna.storages.BaseStorage | None, study_name: str) -> int:
    if storage is None:
        return 0
    try:
        return len(optuna.load_study(study_name=study_name, storage=storage).get_trials(deepcopy=False))
    except KeyError:  # no such study yet
        return 0


def _sampler(config: TuneConfig, n_trials: int, *, existing: int) -> optuna.samplers.TPESampler:
    """Seeded TPE over the conditional space (``group=True`` models each family's parameters jointly).

    The seed is offset by the worker index and by the trials the study already holds: a fresh single-worker
    study is exactly reproducible, while a continued study or a second worker explores new points instead of
    replaying the first worker's random start-up trials.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=config.seed + 1_000_003 * config.worker + existing,
            n_startup_trials=max(4, min(10, n_trials // 3)),
            group=True,
        )


def _check_study_families(study: optuna.Study, config: TuneConfig) -> None:
    """A shared study keeps one family list: Optuna refuses a categorical parameter whose choices change."""
    recorded = study.user_attrs.get(_FAMILIES_ATTR)
    if recorded is None:
        study.set_user_attr(_FAMILIES_ATTR, list(config.families))
    elif list(recorded) != list(config.families):
        raise TuningError(
            f"study '{config.study_name}' searches the families {', '.join(recorded)}; this call asks for "
            f"{', '.join(config.families)}: use the same families or another study name"
        )


def _figures(study: optuna.Study, out_dir: Path, n_complete: int) -> list[Path]:
    """Optimisation history, intermediate values and (with ≥ 2 complete trials) parameter importances, as PNG."""
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    directory = out_dir / ARTIFACT_DIR
    directory.mkdir(parents=True, exist_ok=True)
    target = "validation average precision"
    plots: list[tuple[str, Callable[[optuna.Study], Any]]] = [
        ("optimization_history", lambda st: ovm.plot_optimization_history(st, target_name=target)),
        ("intermediate_values", ovm.plot_intermediate_values),
    ]
    if n_complete >= 2:
        plots.append(("param_importances", lambda st: ovm.plot_param_importances(st, target_name=target)))
    else:
        logger.info("parameter importances need at least 2 complete trials (have %d): skipped", n_complete)
    paths = []
    for name, plot in plots:
        try:
            with warnings.catch_warnings():
                # experimental-API notices, and PED-ANOVA's "few trials per regime" on small studies
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                warnings.simplefilter("ignore", UserWarning)
                axes = plot(study)
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:
            logger.warning("could not draw %s: %s", name, exc)
            plt.close("all")
            continue
        figure = axes.figure if hasattr(axes, "figure") else np.ravel(axes)[0].figure
        figure.set_size_inches(9, 5.5)
        path = directory / f"{name}.png"
        figure.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(figure)
        paths.append(path)
    return paths


def _check_inputs(
    X_train: np.ndarray, y_train: np.ndarray, X_valid: np.ndarray, y_valid: np.ndarray, names: Sequence[str]
) -> None:
    k = len(names)
    for label, X, y in (("training", X_train, y_train), ("validation", X_valid, y_valid)):
        if X.ndim != 2 or X.shape[1] != k:
            raise TuningError(f"the {label} matrix has shape {X.shape}; expected (rows, {k}) for features {names}")
        if y.shape != (X.shape[0],):
            raise TuningError(f"the {label} labels have shape {y.shape}; expected ({X.shape[0]},)")
    if X_train.shape[0] == 0 or int(np.sum(y_train == 1)) == 0:
        raise TuningError("the training block has no fraud: widen the split or use more rows")
    if int(np.sum(y_valid == 1)) == 0:
        raise TuningError(
            "the validation block has no fraud, so average precision is undefined: widen the split or use more rows"
        )
    if int(np.sum(y_train != 1)) == 0:
        raise TuningError("the training block has only fraud: widen the split or use more rows")


def tune(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_valid: np.ndarray,
    y_valid: np.ndarray,
    feature_names: Sequence[str],
    config: TuneConfig,
    *,
    mlflow_parent_run_id: str | None = None,
    out_dir: Path,
    on_trial: Callable[[TrialSummary], None] | None = None,
) -> TuneResult:
    """Run the study and return the best model.

    The best trial's fitted model is kept in memory while the study runs (only the current best, so memory
    stays at one extra model) rather than refitted afterwards: refitting would repeat the most expensive trial
    for nothing. The one exception is a best trial run by another worker on a shared storage: its parameters
    are refitted once here with `fit_model` (deterministic).

    Raises:
        TuningError: no fraud in the training or validation block, or no trial completed (the message says
            why: timeout, pruning, or the trials' errors).
    """
    X_train = np.asarray(X_train)
    X_valid = np.asarray(X_valid)
    y_train = np.asarray(y_train).reshape(-1)
    y_valid = np.asarray(y_valid).reshape(-1)
    names = tuple(feature_names)
    _check_inputs(X_train, y_train, X_valid, y_valid, names)
    started = time.monotonic()
    deadline = None if config.timeout is None else started + config.timeout

    tuning = sample_negatives(
        X_train, y_train, rate=config.negative_sample_rate, max_rows=config.max_tuning_rows, seed=config.seed
    )
    logger.info(
        "tuning on %d rows (%d fraud; legitimate rows kept at rate %.4f, weighted %.2f), validating on %d rows",
        tuning.X.shape[0],
        int(tuning.y.sum()),
        tuning.rate,
        1.0 / tuning.rate,
        X_valid.shape[0],
    )
    trainer = StudyData(tuning, X_valid, y_valid, names, config)
    mlflow_log = MlflowLog(mlflow_parent_run_id, config.study_name) if mlflow_parent_run_id else None

    study = _open_study(config)
    objective = Objective(trainer, config, deadline, mlflow_log, on_trial)
    catch: tuple[type[Exception], ...] = (ValueError, ArithmeticError, np.linalg.LinAlgError)
    if "xgboost" in config.families:
        import xgboost as xgb

        catch = (*catch, xgb.core.XGBoostError)
    remaining = None if deadline is None else max(deadline - time.monotonic(), 0.001)
    study.optimize(objective, n_trials=config.n_trials, timeout=remaining, catch=catch, callbacks=[objective.done])

    trials = study.get_trials(deepcopy=False)
    history = [summarise(t) for t in trials]
    counts = {
        "complete": sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials),
        "pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in trials),
        "failed": sum(t.state == optuna.trial.TrialState.FAIL for t in trials),
    }
    if counts["complete"] == 0:
        if mlflow_log:
            mlflow_log.summary(None, counts, tuning.rate, tuning.X.shape[0])
        raise TuningError(_no_trial_message(history, config, time.monotonic() - started))

    best = study.best_trial
    model, refitted = best_model(best, objective, trainer)
    result = TuneResult(
        family=str(best.params["family"]),
        params=dict(best.user_attrs.get(UA_MODEL_PARAMS, {})),
        best_value=float(best.value or 0.0),
        model=model,
        n_complete=counts["complete"],
        n_pruned=counts["pruned"],
        n_failed=counts["failed"],
        history=history,
        figures=_figures(study, out_dir, counts["complete"]) if config.figures else [],
        negative_sample_rate=tuning.rate,
        best_trial=best.number,
        tuning_rows=int(tuning.X.shape[0]),
        study_name=config.study_name,
        refitted=refitted,
    )
    if mlflow_log:
        mlflow_log.summary(result, counts, tuning.rate, tuning.X.shape[0])
    logger.info(
        "best: trial %d, %s, validation AP %.4f (%d complete, %d pruned, %d failed) in %.1fs",
        result.best_trial,
        result.family,
        result.best_value,
        result.n_complete,
        result.n_pruned,
        result.n_failed,
        time.monotonic() - started,
    )
    return result


def _no_trial_message(history: Sequence[TrialSummary], config: TuneConfig, elapsed: float) -> str:
    stopped = [h for h in history if h.stopped == "deadline"]
    errors = [h.error for h in history if h.error]
    if stopped or (config.timeout is not None and elapsed >= config.timeout):
        return (
            f"no tuning trial completed within the {config.timeout:g} s timeout: raise the timeout, lower the "
            "number of rows, or restrict the families"
        )
    if errors:
        return f"no tuning trial completed: {len(errors)} failed, the last with {errors[-1]}"
    return f"no tuning trial completed ({len(history)} trials, all pruned): run more trials or lower report_every"
