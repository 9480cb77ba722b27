"""Where a dataset comes from: the generator, a file, an S3 object, an HTTP(S) URL or Kaggle.

A source is named by one string so that a pipeline parameter, a CLI option and a config file can all carry it:

    generator                                  the PaySim generator with default rows and seed
    generator://?rows=200000&seed=7&scenario=smurfing&chunks=8
    data/paysim.csv | /abs/log.csv.gz | file:///abs/log.zip | data/paysim.parquet
    s3://bucket/key.parquet
    https://example.org/paysim.csv.gz
    kaggle://ealaxi/paysim1                    needs KAGGLE_USERNAME/KAGGLE_KEY or ~/.kaggle/kaggle.json

Remote sources are downloaded to a staging file first (with progress), then read like a local file; nothing
reaches the store before the whole file has been validated.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlparse

import requests

from fraud.data.readers import SUPPORTED_SUFFIXES
from fraud.errors import ConfigError, SourceError
from fraud.settings import Settings
from fraud.store import ObjectStore, S3Uri

log = logging.getLogger(__name__)

SourceKind = Literal["generator", "file", "s3", "http", "kaggle"]
ProgressFn = Callable[[int, int | None], None]
"""Called with (bytes done so far, total bytes if known)."""

DEFAULT_GENERATOR_ROWS = 1_000_000
DEFAULT_KAGGLE_DATASET = "ealaxi/paysim1"
_DOWNLOAD_CHUNK = 1 << 20


@dataclass(frozen=True)
class Source:
    """A parsed source string."""

    kind: SourceKind
    location: str
    params: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        if self.kind == "generator":
            query = "&".join(f"{k}={v}" for k, v in sorted(self.params.items()))
            return f"generator://?{query}" if query else "generator"
        return self.location


def parse_source(text: str) -> Source:  # noqa: PLR0911 - one return per kind of source reads best
    """Classify a source string.

    Raises:
        SourceError: the string is empty or names a scheme no source handles.
    """
    text = text.strip()
    if not text:
        raise SourceError("empty source: give a file path, s3://, http(s)://, kaggle:// or 'generator'")
    if text == "generator":
        return Source("generator", text)
    parsed = urlparse(text)
    scheme = parsed.scheme.lower()
    if scheme == "generator":
        return Source("generator", text, dict(parse_qsl(parsed.query, strict_parsing=False)))
    if scheme == "s3":
        return Source("s3", str(S3Uri.parse(text)))
    if scheme in {"http", "https"}:
        return Source("http", text)
    if scheme == "kaggle":
        dataset = f"{parsed.netloc}{parsed.path}".strip("/") or DEFAULT_KAGGLE_DATASET
        return Source("kaggle", f"kaggle://{dataset}")
    if scheme == "file":
        return Source("file", unquote(parsed.path))
    if scheme and len(scheme) > 1:
        raise SourceError(
            f"unknown source scheme '{scheme}://' in '{text}'; use a file path, s3://, http(s)://, kaggle:// "
            "or generator://"
        )
    return Source("file", text)


def generator_options(source: Source) -> tuple[int, int, str, dict[str, str]]:
    """Rows, seed, scenario name and scenario parameters of a generator source."""
    params = dict(source.params)
    try:
        rows = int(params.pop("rows", DEFAULT_GENERATOR_ROWS))
        seed = int(params.pop("seed", 0))
    except ValueError as exc:
        raise ConfigError(f"generator source '{source}': rows and seed must be whole numbers ({exc})") from exc
    scenario = params.pop("scenario", "baseline")
    return rows, seed, scenario, params


def _file_name(location: str, fallback: str) -> str:
    name = Path(urlparse(location).path).name
    return name or fallback


_MAGIC = ((b"PAR1", ".parquet"), (b"\x1f\x8b", ".csv.gz"), (b"PK\x03\x04", ".zip"))


def _with_known_suffix(path: Path) -> Path:
    """Give a downloaded file an extension the readers understand, from its first bytes if need be."""
    if path.name.lower().endswith(SUPPORTED_SUFFIXES):
        return path
    with path.open("rb") as handle:
        head = handle.read(4)
    suffix = next((ext for magic, ext in _MAGIC if head.startswith(magic)), ".csv")
    renamed = path.with_name(path.name + suffix)
    path.rename(renamed)
    return renamed


def _download(
    url: str,
    target: Path,
    *,
    timeout: float,
    auth: tuple[str, str] | None = None,
    on_progress: ProgressFn | None = None,
) -> Path:
    try:
        with requests.get(url, stream=True, timeout=timeout, auth=auth) as response:
            if response.status_code in {401, 403}:
                raise SourceError(f"{url} refused the download (HTTP {response.status_code}): check the credentials")
            if response.status_code == 404:
                raise SourceError(f"{url} does not exist (HTTP 404)")
            if response.status_code >= 400:
                raise SourceError(f"{url} answered HTTP {response.status_code}: {response.text[:200]}")
            total = int(response.headers.get("Content-Length") or 0) or None
            done = 0
            partial = target.with_name(target.name + ".part")
            with partial.open("wb") as out:
                for chunk in response.iter_content(_DOWNLOAD_CHUNK):
                    out.write(chunk)
                    done += len(chunk)
                    if on_progress:
                        on_progress(done, total)
            if total is not None and done != total:
                partial.unlink(missing_ok=True)
                raise SourceError(f"{url}: the download stopped after {done} of {total} bytes; try again")
            partial.rename(target)
    except requests.RequestException as exc:
        raise SourceError(f"cannot download {url}: {exc}") from exc
    return target


def _kaggle_credentials(settings: Settings) -> tuple[str, str]:
    if settings.kaggle_username and settings.kaggle_key is not None:
        return settings.kaggle_username, settings.kaggle_key.get_secret_value()
    config = Path.home() / ".kaggle" / "kaggle.json"
    if config.is_file():
        try:
            data = json.loads(config.read_text())
            return str(data["username"]), str(data["key"])
        except (ValueError, KeyError) as exc:
            raise SourceError(f"{config} is not a valid Kaggle credentials file ({exc})") from exc
    raise SourceError(
        "the kaggle:// source needs credentials: set KAGGLE_USERNAME and KAGGLE_KEY "
        "(from kaggle.com → Settings → API → Create New Token), or write ~/.kaggle/kaggle.json"
    )


def fetch(source: Source, staging: Path, settings: Settings, on_progress: ProgressFn | None = None) -> Path:
    """Make a non-generator source available as a local file and return its path.

    Local files are used in place; remote ones are downloaded under ``staging`` (the caller removes it).

    Raises:
        SourceError: the file is missing, the download failed or credentials are missing.
    """
    if source.kind == "generator":
        raise SourceError("the generator source produces data, not a file; call the generator instead")
    if source.kind == "file":
        path = Path(source.location).expanduser()
        if not path.is_file():
            raise SourceError(f"no such file: '{path}'")
        return path
    staging.mkdir(parents=True, exist_ok=True)
    if source.kind == "s3":
        uri = S3Uri.parse(source.location)
        target = staging / _file_name(uri.key, "object")
        log.info("downloading %s", uri)
        ObjectStore.from_settings(settings).download_file(uri, target)
        return _with_known_suffix(target)
    if source.kind == "http":
        target = staging / _file_name(source.location, "download")
        log.info("downloading %s", source.location)
        return _with_known_suffix(
            _download(source.location, target, timeout=settings.http_timeout, on_progress=on_progress)
        )
    dataset = source.location.removeprefix("kaggle://")
    url = f"{settings.kaggle_api_url.rstrip('/')}/datasets/download/{dataset}"
    log.info("downloading Kaggle dataset %s", dataset)
    target = staging / f"{dataset.replace('/', '-')}.zip"
    return _with_known_suffix(
        _download(
            url,
            target,
            timeout=settings.http_timeout,
            auth=_kaggle_credentials(settings),
            on_progress=on_progress,
        )
    )
