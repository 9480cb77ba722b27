"""The S3 object store (SeaweedFS locally, MinIO on a cluster) behind one small class.

Everything the platform keeps outside MLflow goes through here, so the endpoint, the credentials and the
error translation live in one place.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from fraud.errors import StoreError
from fraud.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)


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


def _describe(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return f"{err.get('Code', 'error')}: {err.get('Message', str(exc))}"
    return str(exc)


class ObjectStore:
    """Thin, typed access to the S3 API with errors that say what to do next."""

    def __init__(self, endpoint: str, access_key: str, secret_key: str, region: str = "us-east-1") -> None:
        self.endpoint = endpoint
        self._client: S3Client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name=region,
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=60,
            ),
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> ObjectStore:
        access_key, secret_key = settings.s3_credentials()
        return cls(settings.s3_endpoint, access_key, secret_key, settings.aws_region)

    @property
    def client(self) -> S3Client:
        return self._client

    def _fail(self, action: str, target: str, exc: Exception) -> StoreError:
        return StoreError(
            f"S3 store at {self.endpoint} could not {action} {target} ({_describe(exc)}); "
            "is it running (`fraudctl status`) and are AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY right?"
        )

    def ensure_bucket(self, bucket: str) -> bool:
        """Create the bucket unless it exists. Returns True when it was created."""
        try:
            self._client.head_bucket(Bucket=bucket)
            return False
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code not in {"404", "NoSuchBucket", "NotFound"}:
                raise self._fail("check bucket", bucket, exc) from exc
        except BotoCoreError as exc:
            raise self._fail("check bucket", bucket, exc) from exc
        try:
            self._client.create_bucket(Bucket=bucket)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                return False
            raise self._fail("create bucket", bucket, exc) from exc
        log.info("created bucket %s", bucket)
        return True

    def exists(self, uri: S3Uri) -> bool:
        try:
            self._client.head_object(Bucket=uri.bucket, Key=uri.key)
            return True
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise self._fail("read", str(uri), exc) from exc
        except BotoCoreError as exc:
            raise self._fail("read", str(uri), exc) from exc

    def upload_file(self, path: Path, uri: S3Uri) -> None:
        """Upload a local file. S3 makes the object visible only once the (multipart) upload completes."""
        try:
            self._client.upload_file(str(path), uri.bucket, uri.key)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("write", str(uri), exc) from exc

    def download_file(self, uri: S3Uri, path: Path) -> None:
        try:
            self._client.download_file(uri.bucket, uri.key, str(path))
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in {"404", "NoSuchKey", "NotFound"}:
                raise StoreError(f"no object at {uri}") from exc
            raise self._fail("read", str(uri), exc) from exc
        except BotoCoreError as exc:
            raise self._fail("read", str(uri), exc) from exc

    def put_bytes(self, uri: S3Uri, data: bytes, content_type: str = "application/octet-stream") -> None:
        try:
            self._client.put_object(Bucket=uri.bucket, Key=uri.key, Body=data, ContentType=content_type)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("write", str(uri), exc) from exc

    def get_bytes(self, uri: S3Uri) -> bytes:
        try:
            body = self._client.get_object(Bucket=uri.bucket, Key=uri.key)["Body"]
            return bytes(body.read())
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in {"404", "NoSuchKey", "NotFound"}:
                raise StoreError(f"no object at {uri}") from exc
            raise self._fail("read", str(uri), exc) from exc
        except BotoCoreError as exc:
            raise self._fail("read", str(uri), exc) from exc

    def put_json(self, uri: S3Uri, payload: Any) -> None:
        self.put_bytes(uri, json.dumps(payload, indent=2, sort_keys=True).encode(), "application/json")

    def get_json(self, uri: S3Uri) -> Any:
        return json.loads(self.get_bytes(uri))

    def delete(self, uri: S3Uri) -> None:
        try:
            self._client.delete_object(Bucket=uri.bucket, Key=uri.key)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("delete", str(uri), exc) from exc

    def list(self, prefix: S3Uri) -> Iterator[S3Uri]:
        """Every object under a prefix, in key order."""
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=prefix.bucket, Prefix=prefix.key):
                for item in page.get("Contents", []):
                    yield S3Uri(prefix.bucket, item["Key"])
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("list", str(prefix), exc) from exc
