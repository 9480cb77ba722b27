"""Where a window of scored traffic comes from: the inference log, or a file of transactions scored here.

A fraud team checks last week's file as often as live traffic, so `fraudctl monitor drift --current URI`
takes a file (or ``s3://`` object) in the dataset's own format, validates it like an ingest, scores it with
the reference version's registered model and hands the same columns to the drift code as the log does.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa

from fraud.data.adapters import DatasetAdapter, get_adapter
from fraud.data.readers import validated_batches
from fraud.errors import DataValidationError
from fraud.settings import Settings
from fraud.store import ObjectStore, S3Uri


@dataclass(frozen=True)
class Window:
    """Scored transactions to judge, and where they came from."""

    frame: pd.DataFrame
    source: str
    since: datetime | None = None
    until: datetime | None = None
    pending_labels: int = 0

    def info(self) -> dict[str, str | int | None]:
        return {
            "source": self.source,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "pending_labels": self.pending_labels,
        }


def read_transactions(uri: str, settings: Settings) -> pd.DataFrame:
    """A CSV/Parquet file of transactions in the dataset's format (local path or ``s3://``), validated.

    Raises:
        SourceError: the file is missing or unreadable.
        DataValidationError: a row breaks the dataset's contract (named by row and column).
    """
    adapter = get_adapter("paysim")
    if uri.startswith("s3://"):
        location = S3Uri.parse(uri)
        with tempfile.TemporaryDirectory(prefix="fraud-window-") as tmp:
            local = Path(tmp) / Path(location.key).name
            ObjectStore.from_settings(settings).download_file(location, local)
            return _read(local, adapter)
    return _read(Path(uri).expanduser(), adapter)


def _read(path: Path, adapter: DatasetAdapter) -> pd.DataFrame:
    batches = list(validated_batches(path, adapter))
    frame: pd.DataFrame = pa.Table.from_batches(batches).to_pandas()
    return frame


def score_with_version(settings: Settings, version: str, frame: pd.DataFrame) -> pd.DataFrame:
    """The transactions with the registered version's score and decision, as the predictor would answer.

    Raises:
        DataValidationError: the frame is empty.
    """
    if frame.empty:
        raise DataValidationError("the file holds no transactions to score")
    import mlflow.pyfunc

    from fraud.registry import connect

    connect(settings)
    model = mlflow.pyfunc.load_model(f"models:/{settings.model_name}/{version}")
    answers = model.predict(frame)
    scored = frame.copy()
    scored["score"] = answers["fraud_probability"].to_numpy()
    scored["decision"] = answers["decision"].astype(str).to_numpy()
    scored["model_version"] = str(version)
    return scored
