"""MLflow tracking and registry: the experiment, the registered model and its aliases.

Aliases carry the life cycle: ``challenger`` is the newest candidate, ``champion`` serves stable traffic.
Promotion moves an alias; no version, run or alias target is ever deleted, so any past model can be served
again by pointing an alias back at it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from fraud.errors import RegistryError
from fraud.settings import Settings

log = logging.getLogger(__name__)

CHALLENGER = "challenger"
CHAMPION = "champion"


def connect(settings: Settings) -> MlflowClient:
    """Point MLflow at the configured server and return a client."""
    mlflow.set_tracking_uri(settings.tracking_uri)
    return MlflowClient(tracking_uri=settings.tracking_uri)


ALREADY_EXISTS: Final = "RESOURCE_ALREADY_EXISTS"
"""MLflow's answer to creating what exists: another process (a concurrent pipeline run) created it first."""


def experiment_id(settings: Settings) -> str:
    """The training experiment, created on first use (by whichever of several concurrent runs gets there first)."""
    client = connect(settings)
    try:
        found = client.get_experiment_by_name(settings.experiment_name)
        if found is not None:
            return str(found.experiment_id)
        try:
            return str(client.create_experiment(settings.experiment_name))
        except MlflowException as exc:
            created = (
                client.get_experiment_by_name(settings.experiment_name) if exc.error_code == ALREADY_EXISTS else None
            )
            if created is None:
                raise
            return str(created.experiment_id)
    except MlflowException as exc:
        raise RegistryError(
            f"MLflow at {settings.tracking_uri} refused the experiment '{settings.experiment_name}' ({exc.message}); "
            "is it running (`fraudctl status`)?"
        ) from exc


MISSING_CODES: Final = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"})
"""MLflow error codes meaning "no such model, version or alias" (the registry answered)."""


def is_missing(exc: MlflowException) -> bool:
    """The registry answered that the model, version or alias does not exist."""
    return exc.error_code in MISSING_CODES


def unreachable(exc: BaseException) -> bool:
    """The error is a failure to talk to the registry (refused, reset, timed out), not an answer from it.

    MLflow wraps the HTTP client's error in an ``MlflowException`` ("API request to … failed with exception …")
    raised while handling it, so the cause is found on the exception's chain.
    """
    import requests

    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, requests.ConnectionError | requests.Timeout | ConnectionError | TimeoutError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def registry_failure(exc: MlflowException, tracking_uri: str, what: str) -> RegistryError:
    """A `RegistryError` that says whether the registry lacks ``what``, cannot be reached, or failed, with the cause."""
    if is_missing(exc):
        return RegistryError(f"registry has no {what} yet ({exc.message})")
    if unreachable(exc):
        return RegistryError(
            f"the registry at {tracking_uri} is unreachable while reading {what} ({exc.message}); "
            "is the MLflow server running (`fraudctl status`)?"
        )
    return RegistryError(f"the registry at {tracking_uri} failed to read {what}: {exc.message}")


def version_by_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version an alias points at, or None when the model or the alias does not exist yet.

    Raises:
        RegistryError: the registry is unreachable or failed (the message says which, with the cause).
    """
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if is_missing(exc):
            return None
        raise registry_failure(exc, client.tracking_uri, f"alias '{alias}' of model '{name}'") from exc


def ensure_registered_model(client: MlflowClient, name: str, description: str) -> None:
    """Create the registered model unless it exists (a concurrent run creating it first is fine)."""
    try:
        client.get_registered_model(name)
    except MlflowException:
        try:
            client.create_registered_model(name, description=description)
        except MlflowException as exc:
            if exc.error_code != ALREADY_EXISTS:
                raise


@dataclass(frozen=True)
class GateDecision:
    """Outcome of the champion gate, logged with the run."""

    promote: bool
    reason: str
    challenger_score: float
    champion_version: str | None
    champion_score: float | None

    def as_metrics(self) -> dict[str, float]:
        metrics = {
            "gate_challenger_test_average_precision": self.challenger_score,
            "gate_promoted": float(self.promote),
        }
        if self.champion_score is not None:
            metrics["gate_champion_test_average_precision"] = self.champion_score
        return metrics


def decide_champion(
    challenger_score: float,
    champion_score: float | None,
    champion_version: str | None,
    *,
    min_improvement: float = 0.0,
) -> GateDecision:
    """Promote the challenger when there is no champion, or when it beats the champion on the same test block.

    Both scores must come from the same rows; a tie keeps the current champion (no churn without evidence).
    """
    if champion_version is None or champion_score is None:
        return GateDecision(True, "no champion yet", challenger_score, None, None)
    if challenger_score > champion_score + min_improvement:
        reason = (
            f"challenger average precision {challenger_score:.4f} beats champion v{champion_version} "
            f"{champion_score:.4f} on the same test block"
        )
        return GateDecision(True, reason, challenger_score, champion_version, champion_score)
    reason = (
        f"champion v{champion_version} keeps the alias: {champion_score:.4f} vs challenger {challenger_score:.4f} "
        "average precision on the same test block"
    )
    return GateDecision(False, reason, challenger_score, champion_version, champion_score)


def set_alias(client: MlflowClient, name: str, alias: str, version: str) -> None:
    try:
        client.set_registered_model_alias(name, alias, version)
    except MlflowException as exc:
        raise RegistryError(f"cannot point alias '{alias}' of '{name}' at version {version}: {exc.message}") from exc
    log.info("alias %s of %s → version %s", alias, name, version)


def aliases_of(client: MlflowClient, name: str, version: str) -> list[str]:
    return sorted(client.get_model_version(name, version).aliases)
