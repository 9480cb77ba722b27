"""The model families, registered in one place.

Each family is one module of this package (its `NativeModel` subclass, search space, fits, persistence) ending in
a `fraud.families.base.ModelFamily` entry named ``FAMILY``; `REGISTRY` below lists them. Adding a family is one
module and one line here: persistence (`fraud.modeling`), the study (`fraud.tuning`), the pipeline's ``families``
parameter and the predictor all read this registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from fraud.families import hist_gb, logreg, xgboost
from fraud.families.base import Family, ModelFamily

REGISTRY: Final[Mapping[Family, ModelFamily]] = MappingProxyType(
    {family.name: family for family in (xgboost.FAMILY, hist_gb.FAMILY, logreg.FAMILY)}
)
"""Every family by name, in the order a study searches them by default."""

FAMILIES: Final[tuple[Family, ...]] = tuple(REGISTRY)


def family(name: str) -> ModelFamily:
    """The registered family of that name; KeyError names the known ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model family {name!r}; known: {', '.join(REGISTRY)}") from None
