"""`fraudctl serve`: run the KServe predictor against the local stack (or a model directory), on loopback.

A thin shell over `serving.__main__.main`, the container's entrypoint, so the local command and the pod run the
same server with the same flags; this one only spells them the CLI's way and keeps the local defaults
(127.0.0.1, the registry of `fraudctl up`, and its collector as the payload logger's target when it runs).
"""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Annotated

import typer

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))

AliasOpt = Annotated[
    str | None, typer.Option(help="Registry alias to serve (default: FRAUD_MODEL_ALIAS, i.e. champion).")
]
VersionOpt = Annotated[
    str | None, typer.Option("--model-version", help="Serve this registry version instead of the alias.")
]
PortOpt = Annotated[int, typer.Option(min=1, max=65535, help="REST port (V1 and V2).")]
GrpcPortOpt = Annotated[int, typer.Option("--grpc-port", min=1, max=65535, help="gRPC port (V2).")]
NoGrpcOpt = Annotated[bool, typer.Option("--no-grpc", help="Serve REST only.")]
ModelDirOpt = Annotated[
    Path | None,
    typer.Option("--model-dir", help="Serve a downloaded MLflow model directory instead of the registry."),
]
HostOpt = Annotated[
    str | None, typer.Option(help="Bind address (default: FRAUD_SERVE_HOST, 127.0.0.1). 0.0.0.0 exposes it.")
]
LoggerUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--logger-url",
        help="Send every inference's request and response (KServe payload-logger CloudEvents) to this collector "
        "URL. Default: FRAUD_SERVE_LOGGER_URL, else the local stack's collector when `fraudctl up` has it running "
        "(FRAUD_COLLECTOR_URL / port FRAUD_COLLECTOR_PORT), else none. Never delays an answer.",
    ),
]
NoLoggerOpt = Annotated[bool, typer.Option("--no-logger", help="Do not log requests and responses to any collector.")]


def serve(
    alias: AliasOpt = None,
    model_version: VersionOpt = None,
    port: PortOpt = 8080,
    grpc_port: GrpcPortOpt = 8081,
    no_grpc: NoGrpcOpt = False,
    model_dir: ModelDirOpt = None,
    host: HostOpt = None,
    logger_url: LoggerUrlOpt = None,
    no_logger: NoLoggerOpt = False,
) -> None:
    """Serve fraud-detector (V1 and V2 REST, V2 gRPC) until Ctrl-C; ready once the model is loaded.

    Example: fraudctl serve --alias champion --port 8080, then
    curl -s localhost:8080/v1/models/fraud-detector:predict -d '{"instances": [{"step": 1, "type": "TRANSFER",
    "amount": 181.0, "nameOrig": "C1", "nameDest": "C2"}]}'
    """
    from serving.__main__ import main as serve_main

    argv = ["--http_port", str(port), "--grpc_port", str(grpc_port), "--enable_grpc", str(not no_grpc).lower()]
    for flag, value in (("--alias", alias), ("--model_version", model_version), ("--host", host)):
        if value:
            argv += [flag, value]
    if model_dir is not None:
        argv += ["--model_dir", str(model_dir)]
    argv += ["--logger_url", "" if no_logger else (logger_url or default_logger_url())]
    code = serve_main(argv)
    if code:
        raise typer.Exit(code)


def default_logger_url() -> str:
    """FRAUD_SERVE_LOGGER_URL, else the local stack's collector when it answers its health check, else ""."""
    from fraud.settings import get_settings

    settings = get_settings()
    if settings.serve_logger_url:
        return settings.serve_logger_url
    url = settings.collector_endpoint
    try:
        with _NO_PROXY.open(f"{url}/healthz", timeout=1.0) as answer:
            up = answer.status == 200
    except OSError:
        up = False
    if up:
        typer.echo(f"payload log: every request and answer goes to the collector at {url} (--no-logger: off)")
        return url + "/"
    return ""


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
