"""Land a dataset in the object store as validated Parquet with a manifest.

Layout in the data bucket (one prefix per distinct content):

    raw/<dataset>/<fingerprint[:16]>/data.parquet     the rows, canonical schema, zstd
    raw/<dataset>/<fingerprint[:16]>/manifest.json    source, rows, positives, schema version, fingerprint
    raw/<dataset>/latest.json                          the manifest of the most recent ingest

The manifest is written last and is the commit marker: a prefix without one is incomplete and is never read.
Every row is validated into a local staging file before anything is uploaded, so a malformed file leaves nothing
in the store, and content that is already there (same fingerprint) is not uploaded again.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel

from fraud.data.adapters import DatasetAdapter, get_adapter
from fraud.data.fingerprint import FINGERPRINT_ALGORITHM, Fingerprinter
from fraud.data.readers import validated_batches
from fraud.data.sources import ProgressFn, Source, fetch, generator_options, parse_source
from fraud.errors import FraudError, StoreError
from fraud.settings import Settings
from fraud.store import ObjectStore, S3Uri

log = logging.getLogger(__name__)

GENERATOR_BATCH_ROWS = 500_000
PARQUET_ROW_GROUP_ROWS = 1_000_000
RowsFn = Callable[[int], None]


class DatasetManifest(BaseModel):
    """What the store holds under one dataset prefix; the pipeline's ingest step hands this on."""

    dataset: str
    schema_version: str
    fingerprint: str
    fingerprint_algorithm: str
    source: str
    rows: int
    positives: int
    label: str
    time_column: str
    time_min: int
    time_max: int
    data_uri: str
    size_bytes: int
    ingested_at: str

    @property
    def positive_rate(self) -> float:
        return self.positives / self.rows if self.rows else 0.0


@dataclass(frozen=True)
class IngestResult:
    manifest: DatasetManifest
    already_present: bool
    manifest_uri: S3Uri


def dataset_prefix(settings: Settings, dataset: str, fingerprint: str) -> S3Uri:
    return S3Uri(settings.data_bucket, f"raw/{dataset}/{fingerprint[:16]}")


def latest_uri(settings: Settings, dataset: str) -> S3Uri:
    return S3Uri(settings.data_bucket, f"raw/{dataset}/latest.json")


def source_batches(
    source: Source,
    adapter: DatasetAdapter,
    settings: Settings,
    staging: Path,
    on_download: ProgressFn | None = None,
    on_generated: RowsFn | None = None,
) -> Iterator[pa.RecordBatch]:
    """Validated batches from any source, in the adapter's canonical schema."""
    if source.kind == "generator":
        # Imported here: the generator is only needed for this source, and keeps its own heavy setup.
        from fraud.data.generator import generate
        from fraud.data.scenarios import get_scenario

        rows, seed, scenario_name, params = generator_options(source)
        scenario = get_scenario(scenario_name, **params)
        table = generate(rows, seed=seed, scenario=scenario, on_progress=on_generated)
        first_row = 1
        for batch in table.to_batches(max_chunksize=GENERATOR_BATCH_ROWS):
            yield adapter.normalize(batch, first_row)
            first_row += batch.num_rows
        return
    path = fetch(source, staging, settings, on_progress=on_download)
    yield from validated_batches(path, adapter)


@dataclass
class _Written:
    path: Path
    fingerprint: str
    rows: int
    positives: int
    time_min: int
    time_max: int


def _write_validated(
    batches: Iterator[pa.RecordBatch], adapter: DatasetAdapter, target: Path, on_rows: RowsFn | None
) -> _Written:
    fingerprint = Fingerprinter(adapter.arrow_schema)
    positives = 0
    time_min, time_max = None, None
    with pq.ParquetWriter(target, adapter.arrow_schema, compression="zstd") as writer:
        for batch in batches:
            writer.write_batch(batch, row_group_size=PARQUET_ROW_GROUP_ROWS)
            fingerprint.update(batch)
            positives += adapter.positives(batch)
            bounds = pc.min_max(batch.column(adapter.time))
            low, high = int(bounds["min"].as_py()), int(bounds["max"].as_py())
            time_min = low if time_min is None else min(time_min, low)
            time_max = high if time_max is None else max(time_max, high)
            if on_rows:
                on_rows(batch.num_rows)
    if time_min is None or time_max is None:
        raise FraudError("the source produced no rows")
    return _Written(target, fingerprint.hexdigest(), fingerprint.rows, positives, time_min, time_max)


def find_manifest(store: ObjectStore, settings: Settings, dataset: str, fingerprint: str) -> DatasetManifest | None:
    uri = dataset_prefix(settings, dataset, fingerprint).child("manifest.json")
    if not store.exists(uri):
        return None
    return DatasetManifest.model_validate(store.get_json(uri))


def ingest(
    source: str,
    settings: Settings,
    *,
    dataset: str = "paysim",
    output: Path | None = None,
    on_rows: RowsFn | None = None,
    on_download: ProgressFn | None = None,
    on_generated: RowsFn | None = None,
) -> IngestResult:
    """Validate a source completely, then land it in the store (unless identical content is already there).

    Args:
        source: a source string (see `fraud.data.sources`).
        settings: endpoints, bucket and credentials.
        dataset: adapter name; only `paysim` today.
        output: also keep the validated Parquet file here (the pipeline's Dataset artifact).
        on_rows: progress callback, rows validated so far (incremental).
        on_download: progress callback for remote sources, (bytes done, total).
        on_generated: progress callback for the generator, rows generated (incremental).

    Raises:
        DataValidationError: the data breaks the schema (column, row and problem named); nothing is stored.
        SourceError: the source cannot be read.
        StoreError: the store refused a write; a partly uploaded object is removed.
    """
    adapter = get_adapter(dataset)
    parsed = parse_source(source)
    store = ObjectStore.from_settings(settings)
    staging_root = settings.home_dir / "staging"
    staging_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="ingest-", dir=staging_root))
    try:
        batches = source_batches(parsed, adapter, settings, staging / "download", on_download, on_generated)
        written = _write_validated(batches, adapter, staging / "data.parquet", on_rows)
        log.info(
            "validated %d rows (%d positive), fingerprint %s", written.rows, written.positives, written.fingerprint
        )
        prefix = dataset_prefix(settings, dataset, written.fingerprint)
        manifest_uri = prefix.child("manifest.json")
        existing = find_manifest(store, settings, dataset, written.fingerprint)
        if existing is not None:
            log.info("identical content already in the store at %s; nothing uploaded", prefix)
            result = IngestResult(existing, already_present=True, manifest_uri=manifest_uri)
        else:
            result = IngestResult(
                _upload(store, settings, adapter, written, str(parsed), prefix),
                already_present=False,
                manifest_uri=manifest_uri,
            )
        store.put_json(latest_uri(settings, dataset), result.manifest.model_dump())
        if output is not None:
            output.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(written.path, output)
        return result
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _upload(
    store: ObjectStore, settings: Settings, adapter: DatasetAdapter, written: _Written, source: str, prefix: S3Uri
) -> DatasetManifest:
    store.ensure_bucket(settings.data_bucket)
    data_uri = prefix.child("data.parquet")
    manifest = DatasetManifest(
        dataset=adapter.name,
        schema_version=adapter.schema_version,
        fingerprint=written.fingerprint,
        fingerprint_algorithm=FINGERPRINT_ALGORITHM,
        source=source,
        rows=written.rows,
        positives=written.positives,
        label=adapter.label,
        time_column=adapter.time,
        time_min=written.time_min,
        time_max=written.time_max,
        data_uri=str(data_uri),
        size_bytes=written.path.stat().st_size,
        ingested_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    try:
        store.upload_file(written.path, data_uri)
        store.put_json(prefix.child("manifest.json"), manifest.model_dump())
    except StoreError:
        # Without its manifest the prefix would be an orphan; remove what was written, keep the first error.
        for uri in (data_uri, prefix.child("manifest.json")):
            try:
                store.delete(uri)
            except StoreError:
                log.warning("could not remove the partial upload %s", uri)
        raise
    log.info("stored %s", data_uri)
    return manifest


def read_manifest(uri: str, settings: Settings) -> DatasetManifest:
    """A manifest by URI (an object ending in manifest.json or latest.json)."""
    return DatasetManifest.model_validate(ObjectStore.from_settings(settings).get_json(S3Uri.parse(uri)))
