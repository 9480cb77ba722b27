"""Every private symbol the project uses from kserve, xgboost and scikit-learn, one small module per library.

The predictor's fast path and the tuner reach past three libraries' public APIs where the public API is too slow
(XGBoost's Python wrapper around its C calls, scikit-learn's per-tree predictors) or offers no hook (KServe's
server classes). Each such use lives in `fraud.compat.kserve`, `fraud.compat.xgboost` or `fraud.compat.sklearn`
and nowhere else, and each module lists its symbols in ``SYMBOLS`` with a check of exactly what the project relies
on (the attribute exists, has the signature, layout or behaviour used). ``tests/compat`` runs every check, so a
library upgrade that moves one fails with a message naming the symbol and the installed version, instead of a
500 in production. The modules import their library only when called, so importing `fraud.compat` is free.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata

from fraud.errors import FraudError


class PrivateAPIChangedError(FraudError):
    """A private symbol of a library no longer is what the project relies on (usually after an upgrade)."""

    exit_code = 12


def installed_version(distribution: str) -> str:
    """The installed version of a distribution, or ``"not installed"``."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


@dataclass(frozen=True)
class PrivateSymbol:
    """One private symbol of a library, where the project uses it, and a check of what the project relies on."""

    distributions: tuple[str, ...]
    """The library's distribution names (the first installed one is reported), e.g. ("xgboost", "xgboost-cpu")."""
    written_for: str
    """The version the project was written and tested against (its pin in pyproject.toml)."""
    name: str
    """Dotted name as the library spells it, e.g. ``xgboost.core._LIB``."""
    used_by: str
    check: Callable[[], None]
    """Raises (any exception) when the symbol is gone or no longer behaves as relied on."""

    @property
    def version(self) -> str:
        for distribution in self.distributions:
            version = installed_version(distribution)
            if version != "not installed":
                return f"{distribution} {version}"
        return f"{self.distributions[0]} (not installed)"

    def verify(self) -> None:
        """Run the check; raises `PrivateAPIChangedError` naming the symbol and the installed version."""
        try:
            self.check()
        except Exception as exc:
            raise PrivateAPIChangedError(
                f"private API {self.name} changed in {self.version} (the project was written for "
                f"{self.written_for}; used by {self.used_by}): {type(exc).__name__}: {exc}. "
                f"Adapt fraud/compat to the new version, or pin {self.distributions[0]}=={self.written_for}."
            ) from exc


def expect(condition: bool, message: str) -> None:
    """Raise `AssertionError` with ``message`` unless ``condition`` holds (checks must not rely on ``assert``)."""
    if not condition:
        raise AssertionError(message)
