"""The inference-log collector (`monitoring.collector`) as a local-stack server.

It needs the S3 store (it writes the log there and creates its bucket at start) and nothing else, so `up` starts
it after the store. Its write-ahead log lives under ``<home>/collector/wal`` unless FRAUD_COLLECTOR_WAL_DIR says
otherwise; `down` leaves that directory alone (events acknowledged but not yet flushed are in it, and the next
start writes them).
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

from fraud.errors import StackError
from fraud.settings import Settings
from fraud.stack.credentials import Credentials
from fraud.stack.service import PortSpec, StackService

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class CollectorService(StackService):
    name = "collector"
    title = "Inference-log collector"

    def __init__(self, settings: Settings, credentials: Credentials | None, s3_endpoint: str) -> None:
        super().__init__(settings, credentials)
        self.s3_endpoint = s3_endpoint

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.settings.collector_port}"

    def ports(self) -> list[PortSpec]:
        return [PortSpec(self.settings.collector_port, "inference-log collector", "FRAUD_COLLECTOR_PORT")]

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "monitoring.collector",
            "--host",
            self.host,
            "--port",
            str(self.settings.collector_port),
            "--wal-dir",
            str(self.settings.collector_wal_path),
        ]

    def server_vars(self) -> dict[str, str]:
        if self.credentials is None:
            raise StackError("no S3 credentials for the collector's object store; run `fraudctl up`")
        s = self.settings
        return {
            **self.credentials.env(),
            "MLFLOW_S3_ENDPOINT_URL": self.s3_endpoint,
            "FRAUD_HOME": str(s.home_dir),
            "FRAUD_MONITOR_LOG_BUCKET": s.monitor_log_bucket,
            "FRAUD_COLLECTOR_MAX_EVENT_BYTES": str(s.collector_max_event_bytes),
            "FRAUD_COLLECTOR_SEGMENT_BYTES": str(s.collector_segment_bytes),
            "FRAUD_COLLECTOR_FLUSH_SECONDS": str(s.collector_flush_seconds),
            "FRAUD_COLLECTOR_FLUSH_ROWS": str(s.collector_flush_rows),
            "FRAUD_COLLECTOR_UNMATCHED_SECONDS": str(s.collector_unmatched_seconds),
            "FRAUD_COLLECTOR_DEDUP_SECONDS": str(s.collector_dedup_seconds),
        }

    def probe(self) -> str | None:
        """GET /healthz answers 200 once the write-ahead log is replayed."""
        try:
            with _NO_PROXY.open(f"{self.url}/healthz", timeout=2.0) as response:
                return None if response.status == 200 else f"/healthz answered {response.status}"
        except urllib.error.HTTPError as exc:
            return f"/healthz answered {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            return f"nothing answers on {self.url} ({getattr(exc, 'reason', exc)})"
