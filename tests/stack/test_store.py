"""The object store client against the session's real S3 gateway."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from fraud.settings import Settings
from fraud.store import ObjectStore, S3Uri


def test_multipart_upload_round_trips_without_pool_warnings(
    stack: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A file above the SDK's 5 MiB part size is uploaded in parts on several threads; with a one-connection
    pool urllib3 warned "Connection pool is full" for each, which `make demo`'s ingest printed to new users."""
    payload = os.urandom(17 * 1024 * 1024)
    source = tmp_path / "big.bin"
    source.write_bytes(payload)
    store = ObjectStore.from_settings(stack)
    uri = S3Uri(stack.data_bucket, "tests/store/big.bin")
    store.ensure_bucket(uri.bucket)
    with caplog.at_level(logging.WARNING, logger="urllib3"):
        store.upload_file(source, uri)
    assert not [r.getMessage() for r in caplog.records if "pool is full" in r.getMessage()]
    assert store.get_bytes(uri) == payload
