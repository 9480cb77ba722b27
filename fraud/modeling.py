"""The native model families' shared interface, their persistence, and the names callers import.

Tuning builds `NativeModel` objects, the MLflow pyfunc wrapper carries them and the KServe predictor scores with
them directly on its fast path, so they have one small interface (`NativeModel`, `fraud.families.base`) and one
implementation per registered family (`fraud.families`: ``xgboost``, ``hist_gb``, ``logreg``).

Every family returns the fraud probability as 1-D float64 and contributions as an ``(n, k + 1)`` float64
matrix on the log-odds scale: column ``j < k`` is feature ``feature_names[j]``, the last column is the bias,
and each row sums to the row's log-odds (XGBoost's layout). The bias is the log-odds of a typical training
transaction: TreeSHAP's expected value (XGBoost), the log-odds at the training mean (logreg), at the training
medians (hist_gb). A positive contribution pushes the transaction towards fraud.

A native model directory is the library's own model file plus ``native.json`` (`save_native`, `load_native`).
The module imports only numpy and scipy; xgboost (which pulls in pandas) and scikit-learn are imported when a
model of that family is built or loaded, so a predictor serving one family never pays for the others.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any, Final, cast

import numpy as np

from fraud.errors import ConfigError
from fraud.families import FAMILIES, REGISTRY, family
from fraud.families.base import Family, NativeModel, NativeModelError, StoredModel, training_reference
from fraud.families.hist_gb import HIST_GB_FLAT_MAX_ROWS, HistGBModel
from fraud.families.logreg import LogRegModel
from fraud.families.xgboost import XGBoostModel

__all__ = [
    "FAMILIES",
    "HIST_GB_FLAT_MAX_ROWS",
    "METADATA_FILE",
    "Family",
    "HistGBModel",
    "LogRegModel",
    "NativeModel",
    "NativeModelError",
    "XGBoostModel",
    "load_native",
    "parse_families",
    "read_native_metadata",
    "save_native",
    "top_contributors",
    "training_reference",
]

logger = logging.getLogger(__name__)

NATIVE_FORMAT: Final = "fraud-native-model"
NATIVE_FORMAT_VERSION: Final = 1
METADATA_FILE: Final = "native.json"


def parse_families(text: str) -> tuple[Family, ...]:
    """Families from a comma-separated pipeline/CLI parameter, e.g. ``"xgboost,logreg"``.

    Raises:
        ConfigError: an unknown or empty list (the message lists the valid names).
    """
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in REGISTRY]
    if not names or unknown:
        raise ConfigError(f"unknown model families {unknown or names!r}; choose from {', '.join(FAMILIES)}")
    return tuple(dict.fromkeys(names))


def _library_versions(name: Family) -> dict[str, str]:
    versions = {"numpy": np.__version__}
    for dist in family(name).libraries:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return versions


def top_contributors(contributions: np.ndarray, k: int = 3) -> np.ndarray:
    """Indices of the ``k`` features that push each row's fraud score up the most: shape (n, k), strongest first.

    Reads the (n, features + 1) matrix of `NativeModel.contributions` (the bias column is ignored). Ties go to
    the lower feature index, so the order is deterministic.
    """
    features = np.asarray(contributions)[:, :-1]
    k = min(k, features.shape[1])
    order = np.argsort(-features, axis=1, kind="stable")
    return np.asarray(order[:, :k], dtype=np.intp)


# --------------------------------------------------------------------------------------------------- persistence


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def save_native(model: NativeModel, directory: Path) -> None:
    """Write the model into ``directory``: the library's own file plus ``native.json`` (metadata).

    XGBoost is saved in its JSON model format (portable across XGBoost versions, no code execution on load).
    scikit-learn models are saved with joblib, i.e. pickle: loading one runs code from the file, so model
    directories must only ever come from the trusted registry/store, and they load reliably only with the
    scikit-learn version recorded in ``native.json``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    entry = family(model.family)
    entry.save(model, directory / entry.model_file)
    meta = {
        "format": NATIVE_FORMAT,
        "format_version": NATIVE_FORMAT_VERSION,
        "family": model.family,
        "model_file": entry.model_file,
        "feature_names": list(model.feature_names),
        "reference": {"kind": "training_median", "values": [float(v) for v in model.reference]},
        "params": _jsonable(model.params),
        "libraries": _library_versions(model.family),
    }
    (directory / METADATA_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    logger.debug("saved %s model to %s", model.family, directory)


def read_native_metadata(directory: Path) -> dict[str, Any]:
    """The parsed ``native.json`` of a model directory; raises NativeModelError naming what is wrong."""
    path = directory / METADATA_FILE
    if not path.is_file():
        raise NativeModelError(f"'{directory}' is not a native model directory: {METADATA_FILE} is missing")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise NativeModelError(f"cannot read {path}: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != NATIVE_FORMAT:
        raise NativeModelError(f"{path} is not a {NATIVE_FORMAT} metadata file")
    if meta.get("format_version") != NATIVE_FORMAT_VERSION:
        raise NativeModelError(
            f"{path} has format version {meta.get('format_version')}; this code reads version {NATIVE_FORMAT_VERSION}"
        )
    if meta.get("family") not in REGISTRY:
        raise NativeModelError(f"{path} names unknown family {meta.get('family')!r}; known: {', '.join(REGISTRY)}")
    return cast(dict[str, Any], meta)


def load_native(directory: Path, *, nthread: int = 1, fast: bool = True) -> NativeModel:
    """Load a model written by `save_native`. Predictions are identical to the saved model's.

    ``nthread`` sets the prediction threads of the tree families (1 suits a server scoring one request per core:
    OpenMP threads contend badly on a loaded 2-core machine; offline batch scoring may use more).
    scikit-learn families are unpickled with joblib: only load directories from the trusted registry/store.
    ``fast=False`` scores through the libraries' public APIs only (no `fraud.compat` private calls): the same
    answers, slower on small batches.
    """
    meta = read_native_metadata(directory)
    entry = family(meta["family"])
    model_path = directory / str(meta.get("model_file", entry.model_file))
    if not model_path.is_file():
        raise NativeModelError(f"'{directory}' has {METADATA_FILE} but no model file {model_path.name}")
    names = [str(n) for n in meta["feature_names"]]
    reference = np.asarray(meta["reference"]["values"], dtype=np.float64)
    params = dict(meta.get("params", {}))
    saved_with = meta.get("libraries", {})
    current = _library_versions(entry.name)
    drift = {k: (v, current.get(k)) for k, v in saved_with.items() if k != "numpy" and current.get(k) != v}
    if drift:
        logger.warning("model in %s was saved with %s; loading with %s", directory, saved_with, current)
    try:
        return entry.load(StoredModel(model_path, tuple(names), reference, params, nthread, fast))
    except NativeModelError:
        raise
    except Exception as exc:  # any library error while reading is a corrupt or foreign model file
        raise NativeModelError(f"cannot load the {entry.name} model from {model_path}: {exc}") from exc
