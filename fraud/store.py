"""The S3 object store (SeaweedFS locally, MinIO on a cluster) behind one small class.

Everything the platform keeps outside MLflow goes through here, with the MinIO Python SDK as the client, so the
endpoint, the credentials and the translation of S3 errors into `StoreError` live in one place
(`ObjectStore._translated`). boto3 remains only where MLflow's own S3 artifact client needs it.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlparse

import urllib3
from minio import Minio
from minio.error import MinioException, S3Error

from fraud.errors import ConfigError, StoreError
from fraud.settings import Settings

log = logging.getLogger(__name__)

NOT_FOUND_CODES: Final = frozenset({"NoSuchKey", "NoSuchBucket", "NotFound", "ResourceNotFound"})
"""S3 error codes that mean "no such object or bucket" (MinIO's SDK names a 404 to HEAD one of the first two)."""

CONNECT_TIMEOUT_S: Final = 5.0
READ_TIMEOUT_S: Final = 60.0
RETRIES: Final = 3
POOL_SIZE: Final = 10
"""Connections kept per host: the SDK's own default, enough for its parallel multipart uploads (3 threads)."""


@dataclass(frozen=True)
class S3Uri:
    """A parsed ``s3://bucket/key`` address."""

    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> S3Uri:
        parsed = urlparse(uri)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise StoreError(f"not an S3 URI: '{uri}' (expected s3://bucket/key)")
        return cls(bucket=parsed.netloc, key=parsed.path.lstrip("/"))

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def child(self, name: str) -> S3Uri:
        return S3Uri(self.bucket, f"{self.key.rstrip('/')}/{name}" if self.key else name)


class ObjectNotFoundError(StoreError):
    """The object (or its bucket) does not exist."""


def _client(endpoint: str, access_key: str, secret_key: str, region: str) -> Minio:
    """A MinIO client for an endpoint URL such as ``http://127.0.0.1:8333`` (the SDK takes host and scheme apart)."""
    parsed = urlparse(endpoint)
    if parsed.scheme not in {"http", "https"} or not parsed.netloc or parsed.path.strip("/"):
        raise ConfigError(
            f"S3 endpoint '{endpoint}' must be http(s)://host[:port] with no path (MLFLOW_S3_ENDPOINT_URL)"
        )
    http = urllib3.PoolManager(
        maxsize=POOL_SIZE,  # the SDK uploads multipart parts on several threads; a pool of 1 warns on each
        timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT_S, read=READ_TIMEOUT_S),
        retries=urllib3.Retry(total=RETRIES, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
    )
    return Minio(
        parsed.netloc,
        access_key=access_key,
        secret_key=secret_key,
        secure=parsed.scheme == "https",
        region=region,  # given, so the SDK never asks the store for a bucket's location
        http_client=http,
    )


class ObjectStore:
    """Thin, typed access to the S3 API with errors that say what to do next."""

    def __init__(self, endpoint: str, access_key: str, secret_key: str, region: str = "us-east-1") -> None:
        self.endpoint = endpoint
        self._client = _client(endpoint, access_key, secret_key, region)

    @classmethod
    def from_settings(cls, settings: Settings) -> ObjectStore:
        access_key, secret_key = settings.s3_credentials()
        return cls(settings.s3_endpoint, access_key, secret_key, settings.aws_region)

    @contextmanager
    def _translated(self, action: str, target: str) -> Iterator[None]:
        """The one place S3 and transport errors become `StoreError`s (a missing object: `ObjectNotFoundError`)."""
        try:
            yield
        except S3Error as exc:
            if exc.code in NOT_FOUND_CODES:
                raise ObjectNotFoundError(f"no object at {target}") from exc
            raise self._fail(action, target, f"{exc.code}: {exc.message}") from exc
        except (MinioException, urllib3.exceptions.HTTPError) as exc:
            raise self._fail(action, target, str(exc)) from exc

    def _fail(self, action: str, target: str, cause: str) -> StoreError:
        return StoreError(
            f"S3 store at {self.endpoint} could not {action} {target} ({cause}); "
            "is it running (`fraudctl status`) and are AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY right?"
        )

    def ensure_bucket(self, bucket: str) -> bool:
        """Create the bucket unless it exists. Returns True when it was created."""
        with self._translated("check bucket", bucket):
            if self._client.bucket_exists(bucket):
                return False
        try:
            with self._translated("create bucket", bucket):
                self._client.make_bucket(bucket)
        except StoreError as exc:
            cause = exc.__cause__
            if isinstance(cause, S3Error) and cause.code in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                return False  # created meanwhile by another process
            raise
        log.info("created bucket %s", bucket)
        return True

    def exists(self, uri: S3Uri) -> bool:
        try:
            with self._translated("read", str(uri)):
                self._client.stat_object(uri.bucket, uri.key)
        except ObjectNotFoundError:
            return False
        return True

    def upload_file(self, path: Path, uri: S3Uri) -> None:
        """Upload a local file. S3 makes the object visible only once the (multipart) upload completes."""
        with self._translated("write", str(uri)):
            self._client.fput_object(uri.bucket, uri.key, str(path))

    def download_file(self, uri: S3Uri, path: Path) -> None:
        with self._translated("read", str(uri)):
            self._client.fget_object(uri.bucket, uri.key, str(path))

    def put_bytes(self, uri: S3Uri, data: bytes, content_type: str = "application/octet-stream") -> None:
        with self._translated("write", str(uri)):
            self._client.put_object(uri.bucket, uri.key, io.BytesIO(data), len(data), content_type=content_type)

    def get_bytes(self, uri: S3Uri) -> bytes:
        with self._translated("read", str(uri)):
            response = self._client.get_object(uri.bucket, uri.key)
            try:
                return bytes(response.read())
            finally:
                response.close()
                response.release_conn()

    def put_json(self, uri: S3Uri, payload: Any) -> None:
        self.put_bytes(uri, json.dumps(payload, indent=2, sort_keys=True).encode(), "application/json")

    def get_json(self, uri: S3Uri) -> Any:
        return json.loads(self.get_bytes(uri))

    def delete(self, uri: S3Uri) -> None:
        with self._translated("delete", str(uri)):
            self._client.remove_object(uri.bucket, uri.key)

    def list(self, prefix: S3Uri) -> Iterator[S3Uri]:
        """Every object under a prefix, in key order."""
        with self._translated("list", str(prefix)):
            for item in self._client.list_objects(prefix.bucket, prefix=prefix.key, recursive=True):
                if item.object_name is not None and not item.is_dir:
                    yield S3Uri(prefix.bucket, item.object_name)
