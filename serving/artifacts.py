"""Find and read what the predictor serves: the native model, the feature spec and the thresholds of one version.

A version is logged as an MLflow pyfunc model (`fraud.pyfunc_model`) whose ``artifacts`` name the native model
directory, the feature spec and the thresholds. Their paths inside the model directory are whatever MLflow chose
when it copied them, so they are read from the model's ``MLmodel`` file (``flavors.python_function.artifacts``),
never guessed. Two sources give such a directory:

- the registry: ``models:/<name>@<alias>`` (or a pinned version) is resolved to a version number, then only
  ``MLmodel`` and the three artifacts the fast path needs are downloaded (not the code, the reference sample or
  the environment files), about 0.2 s locally;
- a directory already on disk: what KServe's storage initializer mounts at ``/mnt/models``, or any copy of a
  downloaded version.

Nothing here runs per request: this is load-time code, and it raises `ModelSourceError` (or the registry's and
native model's own errors) naming what is missing, so the loader can log why and retry.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fraud.errors import FraudError
from fraud.evaluation.thresholds import Thresholds
from fraud.features import FeatureSpec
from fraud.modeling import NativeModel, load_native
from fraud.pyfunc_model import ARTIFACT_NATIVE, ARTIFACT_SPEC, ARTIFACT_THRESHOLDS

log = logging.getLogger(__name__)

MLMODEL_FILE = "MLmodel"
REGISTERED_META_FILE = "registered_model_meta"
"""Written by MLflow next to ``MLmodel`` when a registered version is downloaded whole (name and version)."""
KSERVE_MOUNT = Path("/mnt/models")
"""Where KServe's storage initializer puts the model of an InferenceService's ``storageUri``."""
NEEDED_ARTIFACTS = (ARTIFACT_NATIVE, ARTIFACT_SPEC, ARTIFACT_THRESHOLDS)


class ModelSourceError(FraudError):
    """A model directory lacks ``MLmodel`` or one of the artifacts the predictor needs."""

    exit_code = 10


@dataclass(frozen=True)
class ServedModel:
    """Everything the fast path needs, read once at load time."""

    native: NativeModel
    spec: FeatureSpec
    thresholds: Thresholds
    version: str
    source: str
    """Where it came from (``models:/fraud-detector/3`` or a directory), for logs and /v2 model metadata."""


@dataclass(frozen=True)
class RegistrySource:
    """A version of a registered model: pinned by number, else whatever the alias points at."""

    tracking_uri: str
    name: str
    alias: str
    version: str | None = None

    def describe(self) -> str:
        target = f"/{self.version}" if self.version else f"@{self.alias}"
        return f"models:/{self.name}{target} at {self.tracking_uri}"


@dataclass(frozen=True)
class DirectorySource:
    """An MLflow model directory on disk; ``version`` overrides the version read from it."""

    path: Path
    version: str | None = None

    def describe(self) -> str:
        return str(self.path)


ModelSource = RegistrySource | DirectorySource


def _mlmodel(model_dir: Path) -> dict[str, Any]:
    path = model_dir / MLMODEL_FILE
    if not path.is_file():
        raise ModelSourceError(f"'{model_dir}' is not an MLflow model directory: {MLMODEL_FILE} is missing")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ModelSourceError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelSourceError(f"{path} is not an MLmodel file (expected a YAML mapping)")
    return data


def artifact_paths(mlmodel: dict[str, Any], model_dir: Path) -> dict[str, Path]:
    """The pyfunc artifacts named in ``MLmodel``, as paths under ``model_dir`` (they need not exist yet)."""
    flavor = (mlmodel.get("flavors") or {}).get("python_function") or {}
    entries = flavor.get("artifacts") or {}
    paths: dict[str, Path] = {}
    for name, entry in entries.items():
        relative = entry.get("path") if isinstance(entry, dict) else None
        if isinstance(relative, str) and relative:
            paths[str(name)] = model_dir / relative
    missing = [name for name in NEEDED_ARTIFACTS if name not in paths]
    if missing:
        raise ModelSourceError(
            f"{model_dir / MLMODEL_FILE} names no {', '.join(missing)} artifact(s) under "
            "flavors.python_function.artifacts; was this version logged by the fraud pipeline?"
        )
    return paths


def _directory_version(model_dir: Path, mlmodel: dict[str, Any]) -> str:
    meta = model_dir / REGISTERED_META_FILE
    if meta.is_file():
        try:
            data = yaml.safe_load(meta.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            data = None
        if isinstance(data, dict) and data.get("model_version") is not None:
            return str(data["model_version"])
    run_id = mlmodel.get("run_id")
    if run_id:
        return str(run_id)
    raise ModelSourceError(
        f"cannot tell which version '{model_dir}' holds (no {REGISTERED_META_FILE}, no run_id in MLmodel); "
        "set FRAUD_MODEL_VERSION"
    )


def read_model_dir(
    model_dir: Path, version: str | None = None, *, source: str | None = None, fast: bool = True
) -> ServedModel:
    """Read the native model, spec and thresholds of a model directory (``fast``: see `fraud.modeling.load_native`).

    Raises:
        ModelSourceError: ``MLmodel`` or a needed artifact is missing or unreadable.
        NativeModelError: the native model directory is incomplete or from an unknown family.
    """
    mlmodel = _mlmodel(model_dir)
    paths = artifact_paths(mlmodel, model_dir)
    for name in NEEDED_ARTIFACTS:
        if not paths[name].exists():
            raise ModelSourceError(f"artifact '{name}' is missing from {model_dir} (expected {paths[name]})")
    try:
        spec = FeatureSpec.from_json(paths[ARTIFACT_SPEC].read_text(encoding="utf-8"))
        thresholds = Thresholds.from_dict(json.loads(paths[ARTIFACT_THRESHOLDS].read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelSourceError(f"cannot read the feature spec or thresholds in {model_dir}: {exc}") from exc
    native = load_native(paths[ARTIFACT_NATIVE], fast=fast)
    if tuple(native.feature_names) != tuple(spec.names):
        raise ModelSourceError(
            f"the native model in {model_dir} expects features {list(native.feature_names)} "
            f"but the feature spec builds {list(spec.names)}"
        )
    return ServedModel(
        native=native,
        spec=spec,
        thresholds=thresholds,
        version=version or _directory_version(model_dir, mlmodel),
        source=source or str(model_dir),
    )


def resolve_version(source: RegistrySource) -> str:
    """The version number to serve: the pinned one (checked to exist), else the alias's target.

    Raises:
        RegistryError: the registry is unreachable, or the model, version or alias does not exist (yet).
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from fraud.registry import registry_failure

    client = MlflowClient(tracking_uri=source.tracking_uri)
    try:
        if source.version:
            return str(client.get_model_version(source.name, source.version).version)
        return str(client.get_model_version_by_alias(source.name, source.alias).version)
    except MlflowException as exc:
        what = f"version {source.version}" if source.version else f"alias '{source.alias}'"
        raise registry_failure(exc, source.tracking_uri, f"{what} of model '{source.name}'") from exc


def download_version(source: RegistrySource, version: str, destination: Path) -> Path:
    """Download ``MLmodel`` and the needed artifacts of one version into ``destination``; returns the model dir.

    Only the fast path's artifacts are fetched: the pyfunc's code, environment files and reference sample are
    not needed to serve and can be larger than the model itself.
    """
    import mlflow
    from mlflow.store.artifact.models_artifact_repo import ModelsArtifactRepository

    destination.mkdir(parents=True, exist_ok=True)
    uri = f"models:/{source.name}/{version}"
    # ModelsArtifactRepository finds the registry through the process-wide tracking URI.
    mlflow.set_tracking_uri(source.tracking_uri)
    repository = ModelsArtifactRepository(uri)
    repository.download_artifacts(MLMODEL_FILE, str(destination))  # type: ignore[no-untyped-call]
    paths = artifact_paths(_mlmodel(destination), destination)
    for name in NEEDED_ARTIFACTS:
        relative = paths[name].relative_to(destination).as_posix()
        repository.download_artifacts(relative, str(destination))  # type: ignore[no-untyped-call]
    (destination / REGISTERED_META_FILE).write_text(
        yaml.safe_dump({"model_name": source.name, "model_version": version}), encoding="utf-8"
    )
    log.info("downloaded %s (%s) into %s", uri, ", ".join(NEEDED_ARTIFACTS), destination)
    return destination


def load_served_model(source: ModelSource, workdir: Path | None = None, *, fast: bool = True) -> ServedModel:
    """One attempt to load the model from its source; the caller retries. Without ``fast`` the native model scores
    through the libraries' public APIs only.

    ``workdir`` receives the downloaded artifacts of a registry version (a directory is read in place).

    Raises:
        RegistryError, ModelSourceError, NativeModelError, or MLflow/network errors while downloading.
    """
    if isinstance(source, DirectorySource):
        return read_model_dir(source.path, source.version, fast=fast)
    if workdir is None:
        raise ValueError("loading from the registry needs a work directory for the download")
    version = resolve_version(source)
    model_dir = download_version(source, version, workdir / f"v{version}")
    return read_model_dir(model_dir, version, source=f"models:/{source.name}/{version}", fast=fast)
