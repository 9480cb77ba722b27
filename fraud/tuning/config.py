"""What a study is asked to do (`TuneConfig`), what it reports (`TuneResult`, `TrialSummary`) and how it fails."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from fraud.errors import PipelineError
from fraud.families import FAMILIES
from fraud.families.base import Family, NativeModel

AP_METRIC: Final = "valid_average_precision"
STAGED_AP_METRIC: Final = "valid_average_precision_by_round"
STATE_TAG: Final = "fraud.trial_state"
ARTIFACT_DIR: Final = "tuning"


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
        families: the model families searched, a subset of `fraud.families.FAMILIES`.
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
