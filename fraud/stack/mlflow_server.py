"""The local MLflow tracking server: SQLite backend store, artifacts proxied to the S3 store.

Proxied artifacts (``--artifacts-destination s3://…``) mean clients talk only HTTP to MLflow and need no S3 keys;
the server holds them. One worker and no job runner (``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false``) keep it to two
processes instead of a dozen (~155 MB each) on a developer machine. It starts slowly (20–26 s on 2 cores, all
imports), which is why `up` leaves a healthy one alone.
"""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
from pathlib import Path

from fraud.errors import StackError
from fraud.settings import Settings
from fraud.stack.credentials import Credentials
from fraud.stack.service import PortSpec, StackService, venv_bin

# Never route loopback health checks through a proxy from the environment.
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class MlflowServer(StackService):
    name = "mlflow"
    title = "MLflow server"
    poll_interval = 0.5

    def __init__(self, settings: Settings, credentials: Credentials | None, s3_endpoint: str) -> None:
        super().__init__(settings, credentials)
        self.s3_endpoint = s3_endpoint

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.settings.mlflow_port}"

    def ports(self) -> list[PortSpec]:
        return [PortSpec(self.settings.mlflow_port, "MLflow server", "FRAUD_MLFLOW_PORT")]

    @property
    def database(self) -> Path:
        return self.workdir / "mlflow.db"

    def command(self) -> list[str]:
        mlflow = venv_bin() / "mlflow"
        if not mlflow.exists():
            found = shutil.which("mlflow")
            if found is None:
                raise StackError("the `mlflow` command is missing; install the project (`make setup`)")
            mlflow = Path(found)
        return [
            str(mlflow),
            "server",
            "--backend-store-uri",
            f"sqlite:///{self.database}",
            "--artifacts-destination",
            f"s3://{self.settings.artifact_bucket}/",
            "--host",
            self.host,
            "--port",
            str(self.settings.mlflow_port),
            "--workers",
            "1",
        ]

    def server_vars(self) -> dict[str, str]:
        if self.credentials is None:
            raise StackError("no S3 credentials for the MLflow server's artifact store; run `fraudctl up`")
        return {
            **self.credentials.env(),
            "MLFLOW_S3_ENDPOINT_URL": self.s3_endpoint,
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }

    def probe(self) -> str | None:
        """GET /health answers 200 "OK"."""
        try:
            with _NO_PROXY.open(f"{self.url}/health", timeout=2.0) as response:
                body = response.read(64).decode(errors="replace").strip()
                if response.status == 200 and body == "OK":
                    return None
                return f"/health answered {response.status} {body!r}"
        except urllib.error.HTTPError as exc:
            return f"/health answered {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            return f"nothing answers on {self.url} ({getattr(exc, 'reason', exc)})"
