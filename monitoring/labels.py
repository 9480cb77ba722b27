"""Late labels: (request id, row, isFraud) pairs that arrive days after the prediction, and their join.

Labels come in two ways, both ending in the same table::

    s3://<monitor_log_bucket>/labels/day=<arrival day>/part-<writer>-<n>.parquet
    columns: request_id, row, isFraud, labeled_at

- ``POST /v1/labels`` on the collector (durable in its write-ahead log before the answer, flushed with the log);
- `fraudctl monitor labels --source URI` (a CSV or Parquet file, local or ``s3://``), written here directly.

A transaction may be labelled more than once (a chargeback overturned); the latest ``labeled_at`` wins.

Maturity: a fraud label is final only once the transaction is old enough for disputes to have arrived
(chargebacks take weeks). `labelled_predictions` therefore gives performance code only the predictions older
than ``monitor_label_maturity_seconds`` that have a label, and counts the rest as pending.
"""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fraud.errors import DataValidationError, SourceError
from fraud.settings import Settings
from fraud.store import ObjectStore, S3Uri
from monitoring.inference_log import read_log, read_tables

if TYPE_CHECKING:  # pandas is imported where frames are made: the collector parses label posts without it
    import pandas as pd

LABELS_PREFIX: Final = "labels"
LABELS_SCHEMA: Final = pa.schema(
    [
        pa.field("request_id", pa.string(), nullable=False),
        pa.field("row", pa.int32(), nullable=False),
        pa.field("isFraud", pa.int8(), nullable=False),
        pa.field("labeled_at", pa.timestamp("ms", tz="UTC"), nullable=False),
    ],
    metadata={"table": "labels", "layout_version": "1"},
)
MAX_ROW: Final = 1_000_000
MAX_LABELS_PER_POST: Final = 100_000


def labels_prefix(day: date) -> str:
    return f"{LABELS_PREFIX}/day={day.isoformat()}/"


# --- validation ------------------------------------------------------------------------------------------------
def _timestamp(value: Any, index: int) -> datetime:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise DataValidationError(f"not an RFC 3339 time: {value!r}", column="labeled_at", row=index) from None
    else:
        raise DataValidationError(f"must be an RFC 3339 string; got {value!r}", column="labeled_at", row=index)
    if moment.tzinfo is None:
        raise DataValidationError(f"needs a time zone (e.g. Z): {value!r}", column="labeled_at", row=index)
    return moment.astimezone(UTC)


def validate_labels(records: list[dict[str, Any]], default_time: datetime) -> pa.Table:
    """Records (``request_id``, ``row`` = 0, ``isFraud`` 0/1, ``labeled_at`` optional) as a `LABELS_SCHEMA` table.

    Raises:
        DataValidationError: names the first bad record (by index) and field.
    """
    ids: list[str] = []
    rows: list[int] = []
    flags: list[int] = []
    times: list[datetime] = []
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise DataValidationError("must be an object with request_id and isFraud", row=index)
        request_id = record.get("request_id")
        if not isinstance(request_id, str) or not request_id or len(request_id) > 256:
            raise DataValidationError(
                f"must be a non-empty string (≤ 256 characters); got {request_id!r}", column="request_id", row=index
            )
        row = record.get("row", 0)
        if row is None:
            row = 0
        if isinstance(row, bool) or not isinstance(row, int | np.integer) or not 0 <= int(row) < MAX_ROW:
            raise DataValidationError(f"must be an integer in [0, {MAX_ROW}); got {row!r}", column="row", row=index)
        flag = record.get("isFraud")
        if isinstance(flag, bool) or not isinstance(flag, int | np.integer) or int(flag) not in (0, 1):
            raise DataValidationError(f"must be 0 or 1; got {flag!r}", column="isFraud", row=index)
        labeled_at = record.get("labeled_at")
        ids.append(request_id)
        rows.append(int(row))
        flags.append(int(flag))
        times.append(default_time if labeled_at is None else _timestamp(labeled_at, index))
    return pa.table(
        {
            "request_id": pa.array(ids, pa.string()),
            "row": pa.array(rows, pa.int32()),
            "isFraud": pa.array(flags, pa.int8()),
            "labeled_at": pa.array(times, pa.timestamp("ms", tz="UTC")),
        },
        schema=LABELS_SCHEMA,
    )


def parse_labels_body(body: bytes, default_time: datetime) -> pa.Table:
    """The ``POST /v1/labels`` body ``{"labels": [...]}`` as a labels table (DataValidationError when wrong)."""
    try:
        payload = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise DataValidationError(f"body is not JSON: {exc}") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("labels"), list):
        raise DataValidationError('body must be {"labels": [{"request_id": ..., "row": 0, "isFraud": 0|1}, ...]}')
    records = payload["labels"]
    if len(records) > MAX_LABELS_PER_POST:
        raise DataValidationError(f"at most {MAX_LABELS_PER_POST} labels per request; got {len(records)}")
    return validate_labels(records, default_time)


# --- sources and writing ---------------------------------------------------------------------------------------
def read_source(uri: str, settings: Settings, store: ObjectStore | None = None) -> pd.DataFrame:
    """A CSV or Parquet file of labels, local or ``s3://`` (by its suffix)."""
    import pandas as pd

    name = uri.lower().removesuffix(".gz")
    if not name.endswith((".csv", ".parquet", ".pq")):
        raise SourceError(f"'{uri}': labels must be a .csv or .parquet file (columns request_id, row, isFraud)")
    if uri.startswith("s3://"):
        store = store or ObjectStore.from_settings(settings)
        data: Any = io.BytesIO(store.get_bytes(S3Uri.parse(uri)))
    else:
        path = Path(uri).expanduser()
        if not path.is_file():
            raise SourceError(f"no labels file at '{uri}'")
        data = path
    try:
        if name.endswith(".csv"):
            return pd.read_csv(data, dtype={"request_id": str}, compression="infer" if isinstance(data, Path) else None)
        return pd.read_parquet(data)
    except (ValueError, OSError, pa.ArrowException) as exc:
        raise SourceError(f"cannot read labels from '{uri}': {exc}") from exc


def labels_from_frame(frame: pd.DataFrame, default_time: datetime) -> pa.Table:
    import pandas as pd

    missing = {"request_id", "isFraud"} - set(frame.columns)
    if missing:
        raise DataValidationError(
            f"labels need columns request_id and isFraud (row optional); missing {', '.join(sorted(missing))}"
        )
    columns = [c for c in ("request_id", "row", "isFraud", "labeled_at") if c in frame.columns]
    records: list[dict[str, Any]] = [
        {str(k): v for k, v in record.items()}
        for record in frame[columns].astype(object).where(frame[columns].notna(), None).to_dict("records")
    ]
    for record in records:
        if isinstance(record.get("labeled_at"), pd.Timestamp):
            record["labeled_at"] = record["labeled_at"].to_pydatetime()
        for name in ("row", "isFraud"):  # CSV gives floats when a column has gaps
            value = record.get(name)
            if isinstance(value, float) and value.is_integer():
                record[name] = int(value)
    return validate_labels(records, default_time)


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def write_labels(settings: Settings, table: pa.Table, store: ObjectStore | None = None) -> S3Uri:
    """Append a labels table to the store (one new object; existing labels are never rewritten)."""
    store = store or ObjectStore.from_settings(settings)
    store.ensure_bucket(settings.monitor_log_bucket)
    today = datetime.now(UTC).date()
    uri = S3Uri(settings.monitor_log_bucket, f"{labels_prefix(today)}part-upload-{uuid.uuid4().hex}.parquet")
    store.put_bytes(uri, parquet_bytes(table))
    return uri


def read_labels(settings: Settings, since: datetime, store: ObjectStore | None = None) -> pd.DataFrame:
    """Every label that arrived on or after ``since``'s day, the latest per (request_id, row)."""
    store = store or ObjectStore.from_settings(settings)
    first, last = since.astimezone(UTC).date(), datetime.now(UTC).date()
    objects: list[S3Uri] = []
    for n in range((last - first).days + 1):
        prefix = S3Uri(settings.monitor_log_bucket, labels_prefix(first + timedelta(days=n)))
        objects.extend(uri for uri in store.list(prefix) if uri.key.endswith(".parquet"))
    tables = read_tables(store, objects)
    if not tables:
        empty: pd.DataFrame = LABELS_SCHEMA.empty_table().to_pandas()
        return empty
    frame: pd.DataFrame = pa.concat_tables(tables).to_pandas()
    frame = frame.sort_values("labeled_at", kind="stable").drop_duplicates(["request_id", "row"], keep="last")
    return frame.reset_index(drop=True)


# --- the join --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LabelledPredictions:
    """Logged predictions of a window joined to their final labels.

    ``frame``: the matured, labelled rows (the inference-log columns plus ``isFraud`` and ``labeled_at``);
    ``pending``: rows of the window without a final label (``immature`` + ``unlabelled``).
    """

    frame: pd.DataFrame
    rows: int
    """Logged predictions in the window."""
    immature: int
    """Younger than the maturity: their labels may still change or arrive."""
    unlabelled: int
    """Old enough, but no label has arrived."""
    maturity_seconds: float
    as_of: datetime

    @property
    def pending(self) -> int:
        return self.immature + self.unlabelled

    @property
    def labelled(self) -> int:
        return len(self.frame)


def labelled_predictions(
    settings: Settings,
    since: datetime,
    until: datetime,
    version: str | None = None,
    *,
    maturity_seconds: float | None = None,
    now: datetime | None = None,
    store: ObjectStore | None = None,
    log: pd.DataFrame | None = None,
) -> LabelledPredictions:
    """Join the predictions received in [since, until) to their labels, keeping matured ones only.

    ``log`` reuses an inference-log frame already read (e.g. by drift code) instead of reading it again.
    """
    import pandas as pd

    store = store or ObjectStore.from_settings(settings)
    maturity = settings.monitor_label_maturity_seconds if maturity_seconds is None else maturity_seconds
    as_of = (now or datetime.now(UTC)).astimezone(UTC)
    predictions = read_log(settings, since, until, version, store=store) if log is None else log
    labels = read_labels(settings, since, store=store)
    joined = predictions.merge(labels, on=["request_id", "row"], how="left")
    cutoff = pd.Timestamp(as_of - timedelta(seconds=maturity))
    mature = (joined["received_at"] <= cutoff).to_numpy()
    has_label = joined["isFraud"].notna().to_numpy()
    final = joined.loc[mature & has_label].copy()
    final["isFraud"] = final["isFraud"].astype(np.int8)
    return LabelledPredictions(
        frame=final.reset_index(drop=True),
        rows=len(joined),
        immature=int((~mature).sum()),
        unlabelled=int((mature & ~has_label).sum()),
        maturity_seconds=maturity,
        as_of=as_of,
    )
