"""The inference log: one row per scored transaction, as Parquet in the object store, and its reader.

The collector (`monitoring.collector`) writes it; drift, performance and the daily report read it through
`read_log`. The layout is Hive-style so any Parquet tool can read it too::

    s3://<monitor_log_bucket>/inference-log/day=YYYY-MM-DD/model_version=V/part-<writer>-<flush>.parquet

Objects are only ever added (each flush of each collector has its own name), never rewritten, so a reader can
never see half a file. A request whose response never arrived (or the reverse) is still a row, with
``matched = False``; when the missing half turns up later it is written as a second unmatched row, and
`read_log` puts the two halves back together.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fraud.contracts import PAYSIM
from fraud.settings import Settings
from fraud.store import ObjectStore, S3Uri

if TYPE_CHECKING:  # imported where frames are made: the collector writes the log without pandas
    import pandas as pd

LOG_PREFIX: Final = "inference-log"
UNKNOWN_VERSION: Final = "unknown"
"""Partition of rows whose response (which names the version) never arrived."""

TRANSACTION_COLUMNS: Final[tuple[str, ...]] = (
    *PAYSIM.decision_time_names,
    *(name for name in ("newbalanceOrig", "newbalanceDest") if name in PAYSIM.by_name),
)
"""The transaction fields kept as sent: the contract's decision-time ones, plus the post-transaction balances if
sent (a replay of a dataset may carry them; they are never features)."""

LOG_SCHEMA: Final = pa.schema(
    [
        pa.field("request_id", pa.string(), nullable=False),
        pa.field("row", pa.int32(), nullable=False),
        pa.field("received_at", pa.timestamp("ms", tz="UTC"), nullable=False),
        pa.field("model_name", pa.string()),
        pa.field("model_version", pa.string(), nullable=False),
        pa.field("arm", pa.string()),
        pa.field("endpoint", pa.string()),
        pa.field("protocol", pa.string()),
        *(pa.field(name, PAYSIM.field(name).arrow_type) for name in TRANSACTION_COLUMNS),
        pa.field("score", pa.float64()),
        pa.field("decision", pa.string()),
        pa.field("reasons", pa.string()),
        pa.field("status", pa.int32()),
        pa.field("latency_ms", pa.float64()),
        pa.field("matched", pa.bool_(), nullable=False),
    ],
    metadata={"table": "inference-log", "layout_version": "1"},
)
"""Column order and types of every inference-log file. ``latency_ms``: response minus request event time."""

_LOW_CARDINALITY: Final = frozenset(
    {"model_name", "model_version", "arm", "endpoint", "protocol", "type", "decision", "reasons", "status"}
)

PARQUET_OPTIONS: Final = {
    "compression": "zstd",
    "use_dictionary": [*(f.name for f in LOG_SCHEMA if f.name in _LOW_CARDINALITY)],
    "write_statistics": [f.name for f in LOG_SCHEMA if not pa.types.is_string(f.type)],
}
"""How the collector writes log objects: dictionaries only for the few-valued text columns (trying one on account
names and request ids only costs time before it is given up) and min/max statistics only for the numbers and
times a reader filters on (strings' statistics were half of the write's CPU); files come out ~20 % smaller too."""

JOIN_COLUMNS: Final = ("request_id", "row", "received_at", "model_version", "matched", "score", "decision")
"""What `read_log` needs to find and join halves written apart (which half a row is: score or decision set)."""
_REQUEST_SIDE: Final = ("model_name", "arm", "endpoint", "protocol", *TRANSACTION_COLUMNS)
_RESPONSE_SIDE: Final = ("score", "decision", "reasons", "status")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def partition_value(value: str) -> str:
    """A model version as a path segment (anything but letters, digits, ``._-`` becomes ``_``)."""
    return _UNSAFE.sub("_", value) or UNKNOWN_VERSION


def partition_prefix(day: date, version: str) -> str:
    return f"{LOG_PREFIX}/day={day.isoformat()}/model_version={partition_value(version)}/"


def _days(since: datetime, until: datetime) -> list[date]:
    first, last = since.astimezone(UTC).date(), until.astimezone(UTC).date()
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"'{moment.isoformat()}' has no time zone; give UTC times (e.g. 2026-01-31T00:00:00Z)")
    return moment.astimezone(UTC)


def log_objects(store: ObjectStore, bucket: str, since: datetime, until: datetime, version: str | None) -> list[S3Uri]:
    """The Parquet objects of the days in [since, until], of one model version or all."""
    objects: list[S3Uri] = []
    for day in _days(since, until):
        prefix = f"{LOG_PREFIX}/day={day.isoformat()}/"
        if version is not None:
            prefix += f"model_version={partition_value(version)}/"
        objects.extend(uri for uri in store.list(S3Uri(bucket, prefix)) if uri.key.endswith(".parquet"))
    return objects


def read_tables(
    store: ObjectStore,
    objects: Iterable[S3Uri],
    columns: list[str] | None = None,
    dictionary: Iterable[str] = (),
) -> list[pa.Table]:
    """Download and parse Parquet objects, a few at a time (S3 latency, not CPU, bounds this).

    ``dictionary``: columns read dictionary-encoded (pandas makes them Categorical).
    """
    as_dictionary = list(dictionary)

    def one(uri: S3Uri) -> pa.Table:
        return pq.read_table(io.BytesIO(store.get_bytes(uri)), columns=columns, read_dictionary=as_dictionary or None)

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, objects))


CATEGORICAL_COLUMNS: Final = ("model_name", "model_version", "arm", "endpoint", "protocol", "type", "decision")
"""Text columns with a handful of values: `read_log` gives them as pandas Categorical (a 1M-row log is ~40 %
smaller and several times faster to build that way)."""


class LogReader:
    """The rows of a window, read object by object as the objects land, each object once.

    Objects are only ever added and never rewritten, so a job can start reading a window while the collector is
    still writing it: each `refresh` reads only the objects that are new since the last one, and `table` or
    `frame` gives everything read so far. `read_log` is one `refresh` then `frame`; `benchmarks/drift.py chain`
    refreshes while the collector flushes, so reading overlaps writing.
    """

    def __init__(
        self,
        settings: Settings,
        since: datetime,
        until: datetime,
        version: str | None = None,
        *,
        store: ObjectStore | None = None,
        columns: Iterable[str] | None = None,
    ) -> None:
        """``columns``: read only those (plus ``received_at``); None reads every column."""
        self.since, self.until = _utc(since), _utc(until)
        self.version = version
        self.bucket = settings.monitor_log_bucket
        self.store = store or ObjectStore.from_settings(settings)
        wanted = None if columns is None else {"received_at", *columns}
        self.columns = list(LOG_SCHEMA.names) if wanted is None else [n for n in LOG_SCHEMA.names if n in wanted]
        self._subset = wanted is not None
        self._tables: dict[str, pa.Table] = {}
        self._seen: set[str] = set()

    def refresh(self) -> int:
        """Read the window's objects not read yet; how many there were."""
        new = [
            uri
            for uri in log_objects(self.store, self.bucket, self.since, self.until, self.version)
            if uri.key not in self._seen
        ]
        dictionary = [name for name in CATEGORICAL_COLUMNS if name in self.columns]
        tables = read_tables(self.store, new, self.columns if self._subset else None, dictionary)
        start = pa.scalar(self.since, type=pa.timestamp("ms", tz="UTC"))
        end = pa.scalar(self.until, type=pa.timestamp("ms", tz="UTC"))
        for uri, table in zip(new, tables, strict=True):
            received = table.column("received_at")
            self._tables[uri.key] = table.filter(pc.and_(pc.greater_equal(received, start), pc.less(received, end)))
            self._seen.add(uri.key)
        return len(new)

    def table(self) -> pa.Table:
        """The rows read so far, as stored (halves written apart stay apart)."""
        if not self._tables:
            return pa.schema([LOG_SCHEMA.field(name) for name in self.columns]).empty_table()
        table = pa.concat_tables(self._tables.values(), promote_options="default")
        return table.select(self.columns)

    def frame(self, columns: Iterable[str] | None = None, *, release: bool = False) -> pd.DataFrame:
        """The rows read so far, one per transaction (halves written apart joined again), as pandas.

        ``columns``: only these of the columns read (None: all of them); halves are joined first, so those
        columns need not include the join's (`JOIN_COLUMNS` must have been read, though). ``release``: the
        reader lets go of the rows (later frames hold only objects read after), so their Arrow memory is freed
        as pandas takes them instead of being held twice.
        """
        import pandas as pd

        table = self.table()
        if release:
            self._tables.clear()
        keep = list(table.column_names) if columns is None else [n for n in table.column_names if n in set(columns)]
        matched = table.column("matched")
        if pc.all(matched).as_py() is not False:  # nothing to join (or no rows): the usual case, one conversion
            del matched
            table = table.select(keep)
            whole: pd.DataFrame = table.to_pandas(split_blocks=True, self_destruct=True)
            return whole
        table = table.unify_dictionaries()  # both parts below get the same categories
        alone = table.filter(pc.invert(matched)).to_pandas()
        together: pd.DataFrame = table.filter(matched).select(keep).to_pandas(split_blocks=True, self_destruct=True)
        frame = pd.concat([together, _rejoin_halves(alone)[keep]], ignore_index=True)
        for name in CATEGORICAL_COLUMNS:
            if name in frame.columns and not isinstance(frame[name].dtype, pd.CategoricalDtype):
                frame[name] = frame[name].astype("category")
        return frame


def read_log_table(
    settings: Settings,
    since: datetime,
    until: datetime,
    version: str | None = None,
    *,
    store: ObjectStore | None = None,
    columns: list[str] | None = None,
) -> pa.Table:
    """The rows received in [since, until) as one Arrow table, as stored (halves written apart stay apart).

    For readers that aggregate columns without pandas; ``columns`` reads only those (plus ``received_at``).
    """
    reader = LogReader(settings, since, until, version, store=store, columns=columns)
    reader.refresh()
    return reader.table()


def read_log(
    settings: Settings,
    since: datetime,
    until: datetime,
    version: str | None = None,
    *,
    store: ObjectStore | None = None,
    columns: list[str] | None = None,
) -> pd.DataFrame:
    """The logged predictions received in [since, until), one row per transaction, in `LOG_SCHEMA`'s columns.

    Halves written apart (a request flushed as unmatched before its response came) are joined again here, so a
    transaction appears once. ``version`` keeps one model version's partition only. `CATEGORICAL_COLUMNS` come
    as pandas Categorical. ``columns`` gives only those, in `LOG_SCHEMA`'s order (what joining halves needs is
    read too, and dropped after the join): a million rows' account names and request ids are most of the log's
    size and of the time to make pandas objects of it.
    """
    reader = LogReader(
        settings, since, until, version, store=store, columns=None if columns is None else [*columns, *JOIN_COLUMNS]
    )
    reader.refresh()
    return reader.frame(columns, release=True)


def _rejoin_halves(frame: pd.DataFrame) -> pd.DataFrame:
    """Merge an unmatched request row and an unmatched response row of the same transaction into one row."""
    import pandas as pd

    unmatched = frame.loc[~frame["matched"]]
    if unmatched.empty:
        return frame.reset_index(drop=True)
    is_response = unmatched["score"].notna() | unmatched["decision"].notna()
    requests = unmatched.loc[~is_response]
    responses = unmatched.loc[is_response]
    keys = ["request_id", "row"]
    both = requests.merge(responses, on=keys, suffixes=("", "_response"))
    if both.empty:
        return frame.reset_index(drop=True)
    joined = both[[*keys, "received_at", *(c for c in _REQUEST_SIDE if c in frame.columns)]].copy()
    for column in _RESPONSE_SIDE:
        if column in frame.columns:
            joined[column] = both[f"{column}_response"].to_numpy()
    joined["model_version"] = both["model_version_response"].to_numpy()
    if "latency_ms" in frame.columns:
        latency = (both["received_at_response"] - both["received_at"]).dt.total_seconds().to_numpy() * 1000
        joined["latency_ms"] = latency
    joined["matched"] = True
    index = pd.MultiIndex.from_frame(unmatched[keys])
    pairs = pd.MultiIndex.from_frame(both[keys])
    drop = unmatched.index[index.isin(pairs)]
    rest = frame.drop(index=drop)
    return pd.concat([rest, joined[frame.columns]], ignore_index=True)
