"""`fraudctl serve`: run the KServe predictor against the local stack (or a model directory), on loopback.

A thin shell over `serving.__main__.main`, the container's entrypoint, so the local command and the pod run the
same server with the same flags; this one only spells them the CLI's way and keeps the local defaults
(127.0.0.1, the registry of `fraudctl up`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

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


def serve(
    alias: AliasOpt = None,
    model_version: VersionOpt = None,
    port: PortOpt = 8080,
    grpc_port: GrpcPortOpt = 8081,
    no_grpc: NoGrpcOpt = False,
    model_dir: ModelDirOpt = None,
    host: HostOpt = None,
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
    code = serve_main(argv)
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
