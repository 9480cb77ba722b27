"""Only the authenticated S3 API of the local store serves data: not anonymous S3, not the filer, not the master.

SeaweedFS alone (no MLflow), on its own home and free ports: a few seconds. A local user without the stack's
keys must not read, overwrite or delete datasets and model artifacts through any port `weed mini` opens.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from fraud.settings import load_settings
from fraud.stack.credentials import Credentials, ensure_credentials
from fraud.stack.local import private_stack_overrides
from fraud.stack.seaweedfs import SeaweedFS

pytestmark = pytest.mark.stack

BUCKET = "fraud-data"
KEY = "datasets/paysim.csv"
SECRET = b"step,type,amount\n1,TRANSFER,181.0\n"


@pytest.fixture(scope="module")
def weed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SeaweedFS, Credentials]]:
    """A running `weed mini` as the stack configures it, holding one object written through authenticated S3."""
    settings = load_settings(**private_stack_overrides(Path(tmp_path_factory.mktemp("weed-home"))))
    credentials, _ = ensure_credentials(settings.credentials_path)
    server = SeaweedFS(settings, credentials)
    server.start()
    try:
        deadline = time.monotonic() + 120
        while (problem := server.probe()) is not None:
            assert time.monotonic() < deadline, problem
            time.sleep(0.5)
        client = _s3(server, credentials)
        client.create_bucket(Bucket=BUCKET)
        client.put_object(Bucket=BUCKET, Key=KEY, Body=SECRET)
        yield server, credentials
    finally:
        server.stop()


def _s3(server: SeaweedFS, credentials: Credentials | None) -> Any:
    config = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1})
    if credentials is None:
        unsigned = config.merge(Config(signature_version=UNSIGNED))
        return boto3.client("s3", endpoint_url=server.url, region_name="us-east-1", config=unsigned)
    return boto3.client(
        "s3",
        endpoint_url=server.url,
        aws_access_key_id=credentials.access_key,
        aws_secret_access_key=credentials.secret_key,
        region_name="us-east-1",
        config=config,
    )


def _http(url: str, method: str = "GET", data: bytes | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, method=method), timeout=10) as answer:
            return int(answer.status), bytes(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read()


def _still_intact(server: SeaweedFS, credentials: Credentials) -> None:
    body = _s3(server, credentials).get_object(Bucket=BUCKET, Key=KEY)["Body"].read()
    assert body == SECRET
    listed = _s3(server, credentials).list_objects_v2(Bucket=BUCKET)
    assert [item["Key"] for item in listed.get("Contents", [])] == [KEY], "nothing was added or removed"


def test_unsigned_s3_reads_and_writes_fail(weed: tuple[SeaweedFS, Credentials]) -> None:
    server, credentials = weed
    anonymous = _s3(server, None)
    attempts: list[tuple[str, dict[str, Any]]] = [
        ("get_object", {"Bucket": BUCKET, "Key": KEY}),
        ("put_object", {"Bucket": BUCKET, "Key": "datasets/planted.csv", "Body": b"x"}),
        ("delete_object", {"Bucket": BUCKET, "Key": KEY}),
    ]
    for operation, arguments in attempts:
        with pytest.raises(ClientError) as refused:
            getattr(anonymous, operation)(**arguments)
        assert refused.value.response["Error"]["Code"] == "AccessDenied"
    _still_intact(server, credentials)


def test_the_filer_port_serves_no_data(weed: tuple[SeaweedFS, Credentials]) -> None:
    server, credentials = weed
    filer = f"http://{server.host}:{server.settings.seaweed_filer_port}"
    for method, path, data in (
        ("GET", f"/buckets/{BUCKET}/{KEY}", None),
        ("GET", f"/buckets/{BUCKET}/datasets/", None),
        ("PUT", f"/buckets/{BUCKET}/datasets/planted.csv", b"x"),
        ("POST", f"/buckets/{BUCKET}/datasets/planted2.csv", b"x"),
        ("DELETE", f"/buckets/{BUCKET}/{KEY}", None),
    ):
        status, body = _http(filer + path, method, data)
        assert status >= 400, f"filer {method} {path} answered {status}"
        assert SECRET not in body and b"paysim.csv" not in body
    _still_intact(server, credentials)


def test_the_master_port_cannot_delete_buckets(weed: tuple[SeaweedFS, Credentials]) -> None:
    server, credentials = weed
    master = f"http://{server.host}:{server.settings.seaweed_master_port}"
    for path in (f"/col/delete?collection={BUCKET}", "/dir/assign", "/vol/status"):
        status, _ = _http(master + path)
        assert status >= 400, f"master {path} answered {status}"
    _still_intact(server, credentials)
