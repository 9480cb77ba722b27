"""One trial's hyper-parameters: the family first (a categorical parameter), then that family's own space.

Each family declares its space (`fraud.families.base.ModelFamily.search_space`); here its parameters get Optuna
names prefixed by the family (``xgboost.max_depth``), which makes them conditional on the family, so one study
searches every family at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import optuna

from fraud.families import family
from fraud.families.base import Family

FAMILY_PARAM = "family"


class _Prefixed:
    """Optuna's suggestions under ``<family>.<name>``, as a family's `Suggest`."""

    def __init__(self, trial: optuna.Trial, prefix: str) -> None:
        self.trial = trial
        self.prefix = prefix

    def real(self, name: str, low: float, high: float, *, log: bool = False) -> float:
        return self.trial.suggest_float(f"{self.prefix}.{name}", low, high, log=log)

    def integer(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        return self.trial.suggest_int(f"{self.prefix}.{name}", low, high, step=step, log=log)


def suggest_family(trial: optuna.Trial, families: Sequence[Family]) -> Family:
    return str(trial.suggest_categorical(FAMILY_PARAM, list(families)))


def suggest_params(trial: optuna.Trial, name: Family, max_rounds: int) -> dict[str, Any]:
    """The family's hyper-parameters for this trial (its space, its Optuna names prefixed by the family)."""
    return family(name).search_space(_Prefixed(trial, name), max_rounds)
