"""Ingest into the real local S3 store from every kind of source."""

from __future__ import annotations

import base64
import gzip
import io
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pyarrow.parquet as pq
import pytest
from pydantic import SecretStr

from fraud.data.ingest import dataset_prefix, ingest, latest_uri
from fraud.errors import DataValidationError, SourceError
from fraud.settings import Settings
from fraud.store import ObjectStore, S3Uri
from samples import PAYSIM_STEP1, SPARKOV_TEST

pytestmark = pytest.mark.stack

STEP1 = PAYSIM_STEP1


class _Files(BaseHTTPRequestHandler):
    """A tiny file server standing in for a web host and, with a password, for Kaggle's download API."""

    routes: ClassVar[dict[str, bytes]] = {}
    auth: str | None = None

    def do_GET(self) -> None:
        if self.auth is not None and self.headers.get("Authorization") != self.auth:
            self.send_response(401)
            self.end_headers()
            return
        body = self.routes.get(self.path)
        if body is None:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[tuple[str, type[_Files]]]:
    handler = type("Handler", (_Files,), {"routes": {}, "auth": None})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def objects(settings: Settings, prefix: str = "raw/") -> set[str]:
    store = ObjectStore.from_settings(settings)
    return {uri.key for uri in store.list(S3Uri(settings.data_bucket, prefix))}


def test_file_lands_as_parquet_with_manifest_and_second_ingest_is_a_no_op(stack: Settings, tmp_path: Path) -> None:
    # given the genuine first step of the Kaggle log
    first = ingest(str(STEP1), stack)
    # then the rows, the fraud count and the schema version are in the manifest, the data in the store
    manifest = first.manifest
    assert (manifest.rows, manifest.positives) == (2_688, 16)
    assert manifest.schema_version == "paysim-v1"
    assert (manifest.time_min, manifest.time_max) == (1, 1)
    assert not first.already_present
    prefix = dataset_prefix(stack, "paysim", manifest.fingerprint)
    store = ObjectStore.from_settings(stack)
    local = tmp_path / "back.parquet"
    store.download_file(S3Uri.parse(manifest.data_uri), local)
    assert pq.read_metadata(local).num_rows == 2_688
    assert store.get_json(latest_uri(stack, "paysim"))["fingerprint"] == manifest.fingerprint
    # when the same content arrives again, compressed
    packed = tmp_path / "again.csv.gz"
    packed.write_bytes(gzip.compress(STEP1.read_bytes()))
    before = objects(stack, prefix.key)
    second = ingest(str(packed), stack)
    # then nothing new is written
    assert second.already_present
    assert second.manifest.fingerprint == manifest.fingerprint
    assert objects(stack, prefix.key) == before


def test_a_second_dataset_lands_through_its_own_contract_and_adapter(stack: Settings, tmp_path: Path) -> None:
    # given the genuine head of Sparkov's fraudTest.csv / when ingested as the sparkov dataset
    result = ingest(str(SPARKOV_TEST), stack, dataset="sparkov")
    # then its manifest carries its own label, time column and schema version, its rows are stored typed
    manifest = result.manifest
    assert (manifest.rows, manifest.positives) == (2_145, 11)
    assert (manifest.schema_version, manifest.label, manifest.time_column) == ("sparkov-v1", "is_fraud", "unix_time")
    assert manifest.time_min == 1_371_816_865
    local = tmp_path / "sparkov.parquet"
    ObjectStore.from_settings(stack).download_file(S3Uri.parse(manifest.data_uri), local)
    stored = pq.read_schema(local)
    assert str(stored.field("trans_date_trans_time").type).startswith("timestamp[")  # Parquet has no seconds unit
    assert "" not in stored.names


def test_malformed_file_leaves_nothing_in_the_store(stack: Settings, tmp_path: Path) -> None:
    lines = STEP1.read_text().splitlines()
    lines[2000] = lines[2000].replace(",0,0", ",7,0")
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines) + "\n")
    before = objects(stack)
    with pytest.raises(DataValidationError, match="row 2000, column 'isFraud'"):
        ingest(str(bad), stack)
    assert objects(stack) == before
    assert not list((stack.home_dir / "staging").iterdir()), "staging files must be cleaned up"


def test_s3_object_source(stack: Settings, tmp_path: Path) -> None:
    # content no other test ingests (the first 1,000 rows), so this ingest is new and records its source
    head = tmp_path / "paysim_head1000.csv"
    head.write_text("\n".join(STEP1.read_text().splitlines()[:1001]) + "\n")
    store = ObjectStore.from_settings(stack)
    uri = S3Uri(stack.data_bucket, "incoming/paysim_head1000.csv")
    store.upload_file(head, uri)
    result = ingest(str(uri), stack)
    assert not result.already_present
    assert result.manifest.rows == 1_000
    assert result.manifest.source == str(uri)


def test_http_source_and_its_errors(stack: Settings, http_server: tuple[str, type[_Files]]) -> None:
    base, handler = http_server
    handler.routes["/files/paysim.csv"] = STEP1.read_bytes()
    handler.routes["/download?id=3"] = gzip.compress(STEP1.read_bytes())  # no extension: sniffed as gzip
    assert ingest(f"{base}/files/paysim.csv", stack).manifest.rows == 2_688
    assert ingest(f"{base}/download?id=3", stack).manifest.rows == 2_688
    with pytest.raises(SourceError, match="HTTP 404"):
        ingest(f"{base}/files/missing.csv", stack)


def test_kaggle_source_through_a_fake_api(
    stack: Settings, http_server: tuple[str, type[_Files]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Kaggle's API is faked only at its network boundary: a server that checks basic auth and serves the zip.
    base, handler = http_server
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("PS_20174392719_1491204439457_log.csv", STEP1.read_bytes())
    handler.routes["/api/v1/datasets/download/ealaxi/paysim1"] = archive.getvalue()
    handler.auth = "Basic " + base64.b64encode(b"alice:s3cret").decode()
    monkeypatch.setenv("HOME", str(stack.home_dir / "no-home"))
    settings = stack.model_copy(update={"kaggle_api_url": f"{base}/api/v1"})
    with pytest.raises(SourceError, match="KAGGLE_USERNAME and KAGGLE_KEY"):
        ingest("kaggle://ealaxi/paysim1", settings)
    wrong = settings.model_copy(update={"kaggle_username": "alice", "kaggle_key": SecretStr("nope")})
    with pytest.raises(SourceError, match="HTTP 401"):
        ingest("kaggle://ealaxi/paysim1", wrong)
    right = settings.model_copy(update={"kaggle_username": "alice", "kaggle_key": SecretStr("s3cret")})
    result = ingest("kaggle://ealaxi/paysim1", right)
    assert (result.manifest.rows, result.manifest.positives) == (2_688, 16)


def test_generator_source_keeps_a_local_copy_for_the_pipeline(stack: Settings, tmp_path: Path) -> None:
    output = tmp_path / "artifact" / "raw.parquet"
    result = ingest("generator://?rows=20000&seed=3", stack, output=output)
    assert result.manifest.rows == 20_000
    assert pq.read_metadata(output).num_rows == 20_000
    again = ingest("generator://?rows=20000&seed=3", stack)
    assert again.already_present, "the generator is deterministic, so the same seed is the same content"
    assert ingest("generator://?rows=20000&seed=4", stack).manifest.fingerprint != result.manifest.fingerprint


def test_unknown_scheme_is_refused_before_anything_happens(stack: Settings) -> None:
    with pytest.raises(SourceError, match="unknown source scheme 'ftp://'"):
        ingest("ftp://example.org/paysim.csv", stack)
