"""The `tune` step: an Optuna study over the model families, objective validation average precision.

The package is split by responsibility: `config` (what a study is asked and answers), `sampling` (the tuning
set), `search_space` (a trial's parameters; each family declares its own in `fraud.families`), `trainer` (what
trials share, and fixed-parameter fits), `objective` (one trial), `mlflow_log` (child runs) and `study` (the
runner, `tune`). The families themselves (`fraud.families`) know how each trains in stages under the pruner.

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

from fraud.tuning.config import (
    AP_METRIC,
    ARTIFACT_DIR,
    STAGED_AP_METRIC,
    STATE_TAG,
    TrialSummary,
    TuneConfig,
    TuneResult,
    TuningError,
)
from fraud.tuning.sampling import TuningSet, sample_negatives
from fraud.tuning.study import open_storage, tune
from fraud.tuning.trainer import fit_model

__all__ = [
    "AP_METRIC",
    "ARTIFACT_DIR",
    "STAGED_AP_METRIC",
    "STATE_TAG",
    "TrialSummary",
    "TuneConfig",
    "TuneResult",
    "TuningError",
    "TuningSet",
    "fit_model",
    "open_storage",
    "sample_negatives",
    "tune",
]
