"""The `tune` step: an Optuna study over the model families, objective validation average precision.

One study searches all requested families at once (``family`` is the first, categorical parameter; each family's
own parameters are conditional on it), with a seeded TPE sampler and a median pruner fed by intermediate
validation AP:

- ``xgboost`` reports every ``report_every`` boosting rounds from a training callback;
- ``hist_gb`` grows ``max_iter`` with ``warm_start`` in doubling stages (25, 50, 100, 200, …, ``max_iter``);
- ``logreg`` reports once (it has nothing to prune).

The step axis is "boosting rounds" for both tree families, so the pruner compares a trial with the earlier trials
that reached the same number of rounds, whatever their family; it never prunes at a trial's first report.
Intermediate reports read a monitor sample of the validation block (every fraud and at most
``max_monitor_rows`` rows, legitimate rows weighted back), which keeps them cheap on a million-row block; the
value of a completed trial is always the AP of its final model on the whole validation block.

Both tree families stop early when the monitored AP has not improved for ``patience × report_every`` rounds,
and keep the model of their best report (XGBoost: the booster sliced to that round; hist_gb: a copy of the
estimator at that stage), so the value, the parameters recorded and the model returned always agree.

**Class imbalance** is handled explicitly in two places. (1) Sampling: every fraud is kept and legitimate rows
are sampled (automatically so that the tuning set stays under ``max_tuning_rows``); the sampled legitimate rows
get weight ``1/rate``, so the loss, the fitted probabilities and the training medians are those of the full
training block. (2) Re-weighting knobs searched per family: XGBoost's ``scale_pos_weight``, and for the
scikit-learn families ``class_weight={0: 1, 1: pos_weight}``. A ``pos_weight``/``scale_pos_weight`` above 1 trades
calibration for recall; average precision only reads the ranking, and the evaluate step picks thresholds on
validation scores, so the search is free to use it.

**Parallel workers.** With ``storage`` set to a database URL (``sqlite:///…``, ``postgresql://…``) or a journal
file path, several processes can run `tune` on the same study at once; each keeps the best model it trained
itself, and the process that reports the result refits the best trial's parameters once if another worker found
it (the refit is deterministic: same data, same seed, same number of rounds).

**MLflow** (when ``mlflow_parent_run_id`` is given): each trial is a child run of that run, and the study's
summary and figures are logged to it. The tracking URI is whatever the caller configured.
"""

from __future__ import annotations

import copy
import logging
import math
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, cast

import numpy as np
import optuna
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score

from fraud.compat.sklearn import UnweightedBinningHGB, add_tree_values, as_stock
from fraud.errors import PipelineError
from fraud.modeling import (
    FAMILIES,
    Family,
    HistGBModel,
    LogRegModel,
    NativeModel,
    XGBoostModel,
    training_reference,
)

if TYPE_CHECKING:
    import xgboost as xgb
    from mlflow import MlflowClient

logger = logging.getLogger(__name__)

AP_METRIC: Final = "valid_average_precision"
STAGED_AP_METRIC: Final = "valid_average_precision_by_round"
STATE_TAG: Final = "fraud.trial_state"
ARTIFACT_DIR: Final = "tuning"

_UA_MODEL_PARAMS: Final = "model_params"
_UA_STEPS: Final = "steps"
_UA_DURATION: Final = "duration_s"
_UA_RUN_ID: Final = "mlflow_run_id"
_UA_STOPPED: Final = "stopped"
_UA_ERROR: Final = "error"

XGB_MAX_BIN: Final = 256


class TuningError(PipelineError):
    """The tune step cannot produce a model (no fraud to learn from, no trial completed, bad configuration)."""


@dataclass(frozen=True)
class TuneConfig:
    """What the study searches and how long it may take.

    Attributes:
        n_trials: trials this call runs (None: until ``timeout``).
        timeout: seconds for this call (None: no limit). Also a hard deadline inside the running trial: a tree
            model still training at the deadline is stopped and its trial counted as pruned.
        seed: seeds the sampler, the negative sampling and every model; with one worker the same seed and data
            give the same trials, the same best parameters and the same model.
        families: the model families searched, a subset of `fraud.modeling.FAMILIES`.
        negative_sample_rate: fraction of legitimate training rows kept for tuning (None: automatic, keep all
            rows when they fit in ``max_tuning_rows``, otherwise sample legitimate rows down to it).
        max_tuning_rows: cap on the tuning set for the automatic rate.
        max_monitor_rows: cap on the validation rows read for intermediate reports and early stopping (all
            frauds plus weighted legitimate rows; an unbiased AP estimate); each trial's final value is always
            the AP on the whole validation block.
        storage: Optuna storage: None (in memory), a database URL (``sqlite:///path.db``, ``postgresql://…``)
            or a journal file path (a path without ``://``, e.g. ``/data/study.journal``).
        study_name: the study's name in the storage; an existing study of that name is continued.
        max_rounds: upper bound of the boosting rounds searched (XGBoost ``n_estimators`` up to it, hist_gb
            ``max_iter`` up to ``min(800, max_rounds)``); lower it for quick runs.
        report_every: boosting rounds between intermediate reports (tree families).
        patience: reports without improvement of validation AP before a tree model stops growing.
        n_jobs: threads per model (this machine has 2 cores; trials themselves run one after another).
        figures: draw the study's figures (parallel workers other than the one reporting can skip them).
        worker: index of this worker among processes sharing ``storage``; it offsets the sampler's seed so
            parallel workers do not propose the same first trials (models keep ``seed``, so refits match).
    """

    n_trials: int | None = 20
    timeout: float | None = None
    seed: int = 0
    families: tuple[Family, ...] = FAMILIES
    negative_sample_rate: float | None = None
    max_tuning_rows: int = 300_000  # keeps 20 trials within a few minutes on 2 cores; every fraud is always kept
    max_monitor_rows: int = 200_000
    storage: str | None = None
    study_name: str = "fraud-detector"
    max_rounds: int = 1000
    report_every: int = 25
    patience: int = 3
    n_jobs: int = 2
    figures: bool = True
    worker: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "families", tuple(self.families))
        unknown = [f for f in self.families if f not in FAMILIES]
        if not self.families or unknown:
            raise TuningError(f"families must be a non-empty subset of {', '.join(FAMILIES)}; got {self.families}")
        if self.n_trials is None and self.timeout is None:
            raise TuningError("set n_trials or timeout: a study with neither would never end")
        if self.n_trials is not None and self.n_trials < 1:
            raise TuningError(f"n_trials must be at least 1, got {self.n_trials}")
        if self.timeout is not None and self.timeout <= 0:
            raise TuningError(f"timeout must be positive seconds, got {self.timeout}")
        rate = self.negative_sample_rate
        if rate is not None and not 0 < rate <= 1:
            raise TuningError(f"negative_sample_rate must be in (0, 1], got {rate}")
        if self.max_tuning_rows < 1000 or self.max_monitor_rows < 1000:
            raise TuningError("max_tuning_rows and max_monitor_rows must be at least 1000")
        if self.max_rounds < 50:
            raise TuningError(f"max_rounds must be at least 50, got {self.max_rounds}")
        if self.worker < 0:
            raise TuningError(f"worker must be ≥ 0, got {self.worker}")
        if self.report_every < 1 or self.patience < 1 or not 1 <= self.n_jobs <= 2:
            raise TuningError("report_every and patience must be ≥ 1 and n_jobs 1 or 2")


@dataclass(frozen=True)
class TrialSummary:
    """One trial as the caller sees it (also what `on_trial` receives)."""

    number: int
    family: str | None
    state: str
    """``COMPLETE``, ``PRUNED``, ``FAIL`` (or ``RUNNING``/``WAITING`` for another worker's unfinished trial)."""
    value: float | None
    """Validation AP: final for complete trials, the last intermediate value for pruned ones."""
    params: dict[str, Any]
    """The model's hyper-parameters as fitted (for tree families, the number of rounds actually kept)."""
    duration_s: float | None
    steps: list[tuple[int, float]] = field(default_factory=list)
    """Intermediate validation AP by boosting round (monitor sample)."""
    stopped: str | None = None
    """Why a trial ended early: ``pruned`` (median rule), ``deadline`` (timeout), ``early_stopping``."""
    mlflow_run_id: str | None = None
    error: str | None = None


@dataclass
class TuneResult:
    """The study's outcome and the best model, ready to evaluate and register."""

    family: str
    params: dict[str, Any]
    best_value: float
    model: NativeModel
    n_complete: int
    n_pruned: int
    n_failed: int
    history: list[TrialSummary]
    figures: list[Path]
    negative_sample_rate: float
    best_trial: int = -1
    tuning_rows: int = 0
    study_name: str = ""
    refitted: bool = False
    """True when the best trial ran in another worker and its parameters were refitted here."""


# --------------------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class TuningSet:
    """The rows a study trains on: every fraud and a weighted sample of the legitimate rows."""

    X: np.ndarray
    y: np.ndarray
    weight: np.ndarray
    rate: float
    """Fraction of legitimate rows kept (1.0: no sampling); kept legitimate rows weigh ``1/rate``."""


def sample_negatives(X: np.ndarray, y: np.ndarray, *, rate: float | None, max_rows: int, seed: int) -> TuningSet:
    """Keep every positive and a uniform sample of negatives (in their original order), weighted by 1/rate.

    ``rate=None`` picks the largest rate that keeps the set within ``max_rows``. The rate recorded is the
    realised one (kept / available), so the weights make the weighted class totals exactly those of the input.
    """
    y = np.asarray(y)
    positives = np.flatnonzero(y == 1)
    negatives = np.flatnonzero(y != 1)
    if rate is None:
        room = max_rows - positives.size
        rate = 1.0 if X.shape[0] <= max_rows else max(room, 1) / max(negatives.size, 1)
    rate = min(max(rate, 0.0), 1.0)
    if rate >= 1.0 or negatives.size == 0:
        return TuningSet(X, y.astype(np.int8), np.ones(X.shape[0], dtype=np.float64), 1.0)
    keep_n = max(1, round(rate * negatives.size))
    rng = np.random.default_rng(seed)
    kept = np.sort(rng.choice(negatives, size=keep_n, replace=False))
    realised = keep_n / negatives.size
    rows = np.sort(np.concatenate([positives, kept]))
    y_s = y[rows].astype(np.int8)
    w = np.where(y_s == 1, 1.0, 1.0 / realised).astype(np.float64)
    return TuningSet(X[rows], y_s, w, realised)


def _average_precision(y: np.ndarray, scores: np.ndarray, weight: np.ndarray | None = None) -> float:
    return float(average_precision_score(y, scores, sample_weight=weight))


# --------------------------------------------------------------------------------------------------- search spaces


def _suggest(trial: optuna.Trial, family: Family, max_rounds: int) -> dict[str, Any]:
    """The family's hyper-parameters; Optuna names are prefixed by the family (conditional parameters).

    Ranges are the usual ones for gradient boosting on ~10–20 dense features with a rare positive class:
    shallow-to-medium trees, log-scaled learning rates and regularisation, row/column subsampling, and a
    positive-class weight up to 100 (the fraud rate is ~0.1%, so "balanced" would be ~800: too extreme for AP).
    """
    xgb_rounds = max(50, max_rounds // 50 * 50)
    hgb_rounds = max(50, min(800, max_rounds) // 50 * 50)

    def f(name: str, low: float, high: float, *, log: bool = False) -> float:
        return trial.suggest_float(f"{family}.{name}", low, high, log=log)

    def i(name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        return trial.suggest_int(f"{family}.{name}", low, high, step=step, log=log)

    if family == "xgboost":
        return {
            "max_depth": i("max_depth", 3, 10),
            "learning_rate": f("learning_rate", 0.01, 0.3, log=True),
            "n_estimators": i("n_estimators", 50, xgb_rounds, step=50),
            "min_child_weight": f("min_child_weight", 0.5, 50.0, log=True),
            "subsample": f("subsample", 0.5, 1.0),
            "colsample_bytree": f("colsample_bytree", 0.5, 1.0),
            "reg_lambda": f("reg_lambda", 1e-3, 30.0, log=True),
            "scale_pos_weight": f("scale_pos_weight", 1.0, 100.0, log=True),
        }
    if family == "hist_gb":
        return {
            "learning_rate": f("learning_rate", 0.01, 0.3, log=True),
            "max_iter": i("max_iter", 50, hgb_rounds, step=50),
            "max_leaf_nodes": i("max_leaf_nodes", 8, 128, log=True),
            "min_samples_leaf": i("min_samples_leaf", 10, 500, log=True),
            "l2_regularization": f("l2_regularization", 1e-4, 10.0, log=True),
            "pos_weight": f("pos_weight", 1.0, 100.0, log=True),
        }
    return {
        "C": f("C", 1e-4, 1e2, log=True),
        "pos_weight": f("pos_weight", 1.0, 100.0, log=True),
    }


def _xgb_train_params(params: Mapping[str, Any], *, seed: int, n_jobs: int) -> dict[str, Any]:
    return {
        "objective": "binary:logistic",
        "tree_method": "hist",
        "max_bin": XGB_MAX_BIN,
        "nthread": n_jobs,
        "seed": seed,
        "verbosity": 0,
        "max_depth": int(params["max_depth"]),
        "eta": float(params["learning_rate"]),
        "min_child_weight": float(params["min_child_weight"]),
        "subsample": float(params["subsample"]),
        "colsample_bytree": float(params["colsample_bytree"]),
        "lambda": float(params["reg_lambda"]),
        "scale_pos_weight": float(params["scale_pos_weight"]),
    }


def _hist_gb(
    params: Mapping[str, Any], *, max_iter: int, seed: int, warm_start: bool
) -> HistGradientBoostingClassifier:
    return UnweightedBinningHGB(
        learning_rate=float(params["learning_rate"]),
        max_iter=max_iter,
        max_leaf_nodes=int(params["max_leaf_nodes"]),
        min_samples_leaf=int(params["min_samples_leaf"]),
        l2_regularization=float(params["l2_regularization"]),
        class_weight={0: 1.0, 1: float(params["pos_weight"])},
        early_stopping=False,
        warm_start=warm_start,
        random_state=seed,
    )


def _logreg_pipeline(params: Mapping[str, Any], *, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline(
        [
            ("scale", StandardScaler()),
            (
                "clf",
                LogisticRegression(
                    C=float(params["C"]),
                    class_weight={0: 1.0, 1: float(params["pos_weight"])},
                    max_iter=2000,
                    random_state=seed,
                ),
            ),
        ]
    )


@contextmanager
def _threads(n_jobs: int) -> Iterator[None]:
    """Cap OpenMP/BLAS threads of the scikit-learn families (they would otherwise take every core)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=n_jobs):
        yield


def fit_model(
    family: Family,
    params: Mapping[str, Any],
    X: np.ndarray,
    y: np.ndarray,
    *,
    feature_names: Sequence[str],
    sample_weight: np.ndarray | None = None,
    reference: np.ndarray | None = None,
    seed: int = 0,
    n_jobs: int = 2,
) -> NativeModel:
    """Fit one family with fixed hyper-parameters (as a trial records them), no validation, no early stopping.

    Used to refit another worker's best trial, and by anyone who wants a model for known parameters. For tree
    families the number of rounds is ``n_estimators``/``max_iter`` exactly.
    """
    X = np.asarray(X)
    y = np.asarray(y)
    w = np.ones(X.shape[0]) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    ref = training_reference(X, w) if reference is None else reference
    record = {k: v for k, v in params.items() if k != "family"}
    if family == "xgboost":
        import xgboost as xgb

        dtrain = xgb.QuantileDMatrix(X, label=y, weight=w, max_bin=XGB_MAX_BIN, nthread=n_jobs)
        booster = xgb.train(
            _xgb_train_params(params, seed=seed, n_jobs=n_jobs), dtrain, num_boost_round=int(params["n_estimators"])
        )
        return XGBoostModel(booster, feature_names, ref, record, nthread=n_jobs)
    if family == "hist_gb":
        estimator = _hist_gb(params, max_iter=int(params["max_iter"]), seed=seed, warm_start=False)
        with _threads(n_jobs):
            estimator.fit(X, y, sample_weight=w)
        return HistGBModel(as_stock(estimator), feature_names, ref, record, n_threads=n_jobs)
    if family == "logreg":
        pipeline = _logreg_pipeline(params, seed=seed)
        with _threads(n_jobs), warnings.catch_warnings():
            # lbfgs convergence notices, and StandardScaler's sqrt of a tiny negative weighted variance on a
            # constant column (it then uses scale 1, as for any constant column)
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            pipeline.fit(np.asarray(X, dtype=np.float64), y, scale__sample_weight=w, clf__sample_weight=w)
        return LogRegModel(pipeline, feature_names, ref, record)
    raise TuningError(f"unknown family {family!r}; choose from {', '.join(FAMILIES)}")


# --------------------------------------------------------------------------------------------------- trials


class _Stopped(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised inside a trial to end it early as pruned (median rule or deadline)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Reporter:
    """Feeds intermediate AP to the trial (and its pruner) and enforces the study's deadline."""

    def __init__(self, trial: optuna.Trial | None, deadline: float | None) -> None:
        self.trial = trial
        self.deadline = deadline
        self.steps: list[tuple[int, float]] = []

    def check_deadline(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise _Stopped("deadline")

    def report(self, step: int, value: float, *, prunable: bool = True) -> None:
        self.steps.append((step, value))
        if self.trial is None:
            return
        self.trial.report(value, step)
        if prunable and self.trial.should_prune():
            raise _Stopped("pruned")


@dataclass
class _Outcome:
    model: NativeModel
    value: float
    params: dict[str, Any]
    stopped: str | None


def _stages(first: int, total: int) -> list[int]:
    """Stage ends for warm-started hist_gb: ``first``, doubling, then ``total`` (25, 50, 100, 200, …, total).

    A warm start re-bins the data and re-scores the training rows with every tree so far, so its overhead grows
    with the number of stages; doubling keeps it near one extra pass over the trees, and the steps stay
    multiples of ``report_every`` that XGBoost trials also report at, so the pruner can compare them.
    """
    ends = []
    end = first
    while end < total:
        ends.append(end)
        end *= 2
    ends.append(total)
    return ends


class _Trainer:
    """Everything trials share: the tuning set, the validation block and the monitor sample, built once."""

    def __init__(
        self,
        tuning: TuningSet,
        X_valid: np.ndarray,
        y_valid: np.ndarray,
        feature_names: Sequence[str],
        config: TuneConfig,
    ) -> None:
        self.tuning = tuning
        self.X_valid = X_valid
        self.y_valid = np.asarray(y_valid)
        self.feature_names = tuple(feature_names)
        self.config = config
        self.reference = training_reference(tuning.X, tuning.weight)
        monitor = sample_negatives(
            X_valid, self.y_valid, rate=None, max_rows=config.max_monitor_rows, seed=config.seed + 1
        )
        self.monitor = monitor
        self.monitor_X64 = np.ascontiguousarray(monitor.X, dtype=np.float64)
        self._xgb: tuple[xgb.QuantileDMatrix, xgb.DMatrix] | None = None

    def monitor_ap(self, scores: np.ndarray) -> float:
        weight = None if self.monitor.rate >= 1.0 else self.monitor.weight
        return _average_precision(self.monitor.y, scores, weight)

    def final_ap(self, model: NativeModel) -> float:
        return _average_precision(self.y_valid, model.predict_logit(self.X_valid))

    def xgb_matrices(self) -> tuple[xgb.QuantileDMatrix, xgb.DMatrix]:
        if self._xgb is None:
            import xgboost as xgb

            n_jobs = self.config.n_jobs
            t = self.tuning
            dtrain = xgb.QuantileDMatrix(t.X, label=t.y, weight=t.weight, max_bin=XGB_MAX_BIN, nthread=n_jobs)
            # base_margin 0: predictions over a range of trees are then the trees' sum alone, so the monitor's
            # margin can be accumulated stage by stage (a constant offset does not change AP).
            dmonitor = xgb.DMatrix(self.monitor.X, base_margin=np.zeros(self.monitor.X.shape[0]), nthread=n_jobs)
            self._xgb = (dtrain, dmonitor)
        return self._xgb

    def train(self, family: Family, params: dict[str, Any], reporter: _Reporter) -> _Outcome:
        if family == "xgboost":
            return self._train_xgboost(params, reporter)
        if family == "hist_gb":
            return self._train_hist_gb(params, reporter)
        return self._train_logreg(params, reporter)

    def _train_xgboost(self, params: dict[str, Any], reporter: _Reporter) -> _Outcome:
        import xgboost as xgb

        config = self.config
        dtrain, dmonitor = self.xgb_matrices()
        total = int(params["n_estimators"])
        trainer = self

        class Monitor(xgb.callback.TrainingCallback):
            def __init__(self) -> None:
                super().__init__()
                self.margin = np.zeros(dmonitor.num_row(), dtype=np.float64)
                self.done = 0
                self.best = (-math.inf, 0)
                self.early = False

            def after_iteration(self, model: xgb.Booster, epoch: int, evals_log: Any) -> bool:
                reporter.check_deadline()
                rounds = epoch + 1
                if rounds % config.report_every and rounds != total:
                    return False
                self.margin += model.predict(dmonitor, output_margin=True, iteration_range=(self.done, rounds))
                self.done = rounds
                ap = trainer.monitor_ap(self.margin)
                if ap > self.best[0]:
                    self.best = (ap, rounds)
                reporter.report(rounds, ap)
                if rounds - self.best[1] >= config.patience * config.report_every:
                    self.early = True
                    return True
                return False

        monitor = Monitor()
        booster = xgb.train(
            _xgb_train_params(params, seed=config.seed, n_jobs=config.n_jobs),
            dtrain,
            num_boost_round=total,
            callbacks=[monitor],
            verbose_eval=False,
        )
        best_rounds = monitor.best[1] or booster.num_boosted_rounds()
        if best_rounds < booster.num_boosted_rounds():
            booster = booster[:best_rounds]
        fitted = {**params, "n_estimators": best_rounds, "n_estimators_searched": total}
        model = XGBoostModel(booster, self.feature_names, self.reference, fitted, nthread=config.n_jobs)
        return _Outcome(model, self.final_ap(model), fitted, "early_stopping" if monitor.early else None)

    def _train_hist_gb(self, params: dict[str, Any], reporter: _Reporter) -> _Outcome:
        config = self.config
        t = self.tuning
        total = int(params["max_iter"])
        estimator = _hist_gb(params, max_iter=min(config.report_every, total), seed=config.seed, warm_start=True)
        raw = np.zeros(self.monitor_X64.shape[0], dtype=np.float64)
        best: tuple[float, int, HistGradientBoostingClassifier | None] = (-math.inf, 0, None)
        done = 0
        early = False
        with _threads(config.n_jobs):
            for stage_end in _stages(config.report_every, total):
                reporter.check_deadline()
                estimator.set_params(max_iter=stage_end)
                estimator.fit(t.X, t.y, sample_weight=t.weight)
                # Only the trees added by this stage are scored on the monitor rows (sklearn's per-tree
                # predictor, the same one decision_function loops over).
                add_tree_values(estimator, self.monitor_X64, done, stage_end, config.n_jobs, raw)
                done = stage_end
                ap = self.monitor_ap(raw)
                if ap > best[0]:
                    best = (ap, stage_end, copy.deepcopy(estimator))
                reporter.report(stage_end, ap)
                if stage_end - best[1] >= config.patience * config.report_every:
                    early = True
                    break
        kept = as_stock(best[2] if best[2] is not None else estimator)
        fitted = {**params, "max_iter": int(kept.n_iter_), "max_iter_searched": total}
        model = HistGBModel(kept, self.feature_names, self.reference, fitted, n_threads=config.n_jobs)
        return _Outcome(model, self.final_ap(model), fitted, "early_stopping" if early else None)

    def _train_logreg(self, params: dict[str, Any], reporter: _Reporter) -> _Outcome:
        t = self.tuning
        model = fit_model(
            "logreg",
            params,
            t.X,
            t.y,
            feature_names=self.feature_names,
            sample_weight=t.weight,
            reference=self.reference,
            seed=self.config.seed,
            n_jobs=self.config.n_jobs,
        )
        value = self.final_ap(model)
        reporter.report(0, value, prunable=False)
        return _Outcome(model, value, dict(params), None)


# --------------------------------------------------------------------------------------------------- MLflow


class _MlflowLog:
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


# --------------------------------------------------------------------------------------------------- study


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


def _summary(trial: optuna.trial.FrozenTrial) -> TrialSummary:
    attrs = trial.user_attrs
    value = trial.value
    if value is None and trial.intermediate_values:
        value = trial.intermediate_values[max(trial.intermediate_values)]
    duration = attrs.get(_UA_DURATION)
    if duration is None and trial.duration is not None:
        duration = trial.duration.total_seconds()
    return TrialSummary(
        number=trial.number,
        family=trial.params.get("family"),
        state=trial.state.name,
        value=None if value is None else float(value),
        params=dict(attrs.get(_UA_MODEL_PARAMS, {})),
        duration_s=None if duration is None else float(duration),
        steps=[(int(s), float(v)) for s, v in attrs.get(_UA_STEPS, [])],
        stopped=attrs.get(_UA_STOPPED),
        mlflow_run_id=attrs.get(_UA_RUN_ID),
        error=attrs.get(_UA_ERROR),
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


class _Objective:
    """The study's objective: one trial = one family, its parameters, a staged fit and its MLflow child run.

    It also keeps the best model this process has fitted (one model at a time), for `tune` to return.
    """

    def __init__(
        self,
        trainer: _Trainer,
        config: TuneConfig,
        deadline: float | None,
        mlflow_log: _MlflowLog | None,
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
        family = cast(Family, trial.suggest_categorical("family", list(self.config.families)))
        params = _suggest(trial, family, self.config.max_rounds)
        run_id = self.mlflow_log.start(trial.number, family) if self.mlflow_log else None
        if run_id:
            trial.set_user_attr(_UA_RUN_ID, run_id)
        reporter = _Reporter(trial, self.deadline)
        state, value, note, fitted = "COMPLETE", None, None, dict(params)
        try:
            outcome = self.trainer.train(family, params, reporter)
            value, fitted = outcome.value, outcome.params
            if outcome.stopped:
                trial.set_user_attr(_UA_STOPPED, outcome.stopped)
            if value > self.kept_value:
                self.kept_number, self.kept_value, self.kept_model = trial.number, value, outcome.model
            return value
        except _Stopped as stop:
            state, note = "PRUNED", stop.reason
            trial.set_user_attr(_UA_STOPPED, stop.reason)
            value = reporter.steps[-1][1] if reporter.steps else None
            raise optuna.TrialPruned(stop.reason) from None
        except Exception as exc:
            state, note = "FAIL", f"{type(exc).__name__}: {exc}"
            trial.set_user_attr(_UA_ERROR, note)
            raise
        finally:
            duration = time.monotonic() - begun
            trial.set_user_attr(_UA_MODEL_PARAMS, fitted)
            trial.set_user_attr(_UA_STEPS, [[s, v] for s, v in reporter.steps])
            trial.set_user_attr(_UA_DURATION, duration)
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
        summary = _summary(trial)
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


def _best_model(best: optuna.trial.FrozenTrial, objective: _Objective, trainer: _Trainer) -> tuple[NativeModel, bool]:
    """The best trial's model: the one kept in memory, or (best trial from another worker) a refit of it."""
    if objective.kept_number == best.number and objective.kept_model is not None:
        return objective.kept_model, False
    logger.info("best trial %d ran in another worker: refitting its parameters once", best.number)
    config = trainer.config
    model = fit_model(
        cast(Family, best.params["family"]),
        dict(best.user_attrs.get(_UA_MODEL_PARAMS, {})),
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
    trainer = _Trainer(tuning, X_valid, y_valid, names, config)
    mlflow_log = _MlflowLog(mlflow_parent_run_id, config.study_name) if mlflow_parent_run_id else None

    study = _open_study(config)
    objective = _Objective(trainer, config, deadline, mlflow_log, on_trial)
    catch: tuple[type[Exception], ...] = (ValueError, ArithmeticError, np.linalg.LinAlgError)
    if "xgboost" in config.families:
        import xgboost as xgb

        catch = (*catch, xgb.core.XGBoostError)
    remaining = None if deadline is None else max(deadline - time.monotonic(), 0.001)
    study.optimize(objective, n_trials=config.n_trials, timeout=remaining, catch=catch, callbacks=[objective.done])

    trials = study.get_trials(deepcopy=False)
    history = [_summary(t) for t in trials]
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
    model, refitted = _best_model(best, objective, trainer)
    result = TuneResult(
        family=str(best.params["family"]),
        params=dict(best.user_attrs.get(_UA_MODEL_PARAMS, {})),
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
