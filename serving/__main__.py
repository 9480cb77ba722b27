"""Container entrypoint: ``python -m serving [KServe flags] [--alias …] [--model_dir …] [--host …]``.

Starts `serving.server.FraudModelServer` with one `serving.predictor.FraudPredictor`. Flags are KServe's own
(``--http_port``, ``--grpc_port``, ``--enable_grpc``, ``--max_threads``, ``--model_name``, …, built on
``kserve.model_server.parser``) plus the few this predictor adds; every ``FRAUD_*`` setting is read from the
environment as everywhere else, and a flag given here wins over its setting.

``kserve.model_server`` parses ``sys.argv`` when it is first imported and uses the result as defaults for the
server; this entrypoint imports it with an empty argument list and passes every value explicitly instead, so
flags meant for this program (or for ``fraudctl``) can never be mistaken for KServe's.

Examples::

    python -m serving --http_port 8080 --grpc_port 8081                       # models:/fraud-detector@champion
    python -m serving --alias challenger --http_port 8090 --grpc_port 8091
    python -m serving --model_version 3 --enable_grpc false                   # pin a version
    FRAUD_SERVE_HOST=0.0.0.0 python -m serving --model_dir /mnt/models        # in a pod
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from fraud.errors import FraudError

log = logging.getLogger("serving")

SWITCH_INTERVAL_S = 0.001
"""Python's GIL switch interval (default 5 ms). The event loop serves every request on one thread; the only other
busy thread scores large contribution calls inside XGBoost without the GIL and needs it back for microseconds at
the end. At 5 ms that hand-back can wait a whole interval behind a busy loop; 1 ms bounds it."""

_MLFLOW_CLIENT_ENV = {
    # The loader retries with its own backoff; MLflow's default (7 retries, backoff factor 2) would hide an
    # unreachable registry for minutes inside a single attempt.
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


def import_kserve_model_server() -> Any:
    """Import ``kserve.model_server`` without letting it parse this process's arguments."""
    if "kserve.model_server" in sys.modules:
        return sys.modules["kserve.model_server"]
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        from kserve import model_server
    finally:
        sys.argv = saved
    return model_server


def build_parser(kserve_parser: argparse.ArgumentParser, model_name: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m serving",
        description="Serve fraud-detector with the custom KServe predictor.",
        parents=[kserve_parser],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.set_defaults(model_name=model_name)
    parser.add_argument("--alias", default=None, help="Registry alias to serve (default: FRAUD_MODEL_ALIAS).")
    parser.add_argument(
        "--model_version", default=None, help="Registry version to serve instead of the alias (FRAUD_MODEL_VERSION)."
    )
    parser.add_argument(
        "--model_dir",
        type=Path,
        default=None,
        help="Serve an MLflow model directory instead of the registry (FRAUD_MODEL_DIR; /mnt/models is used "
        "automatically when it holds a model).",
    )
    parser.add_argument("--host", default=None, help="Bind address for REST and gRPC (FRAUD_SERVE_HOST).")
    parser.add_argument("--log_level", default=None, help="Log level (FRAUD_LOG_LEVEL, default INFO).")
    parser.add_argument(
        "--logger_url",
        default=None,
        help="Send each inference's request and response as KServe payload-logger CloudEvents to this collector "
        "URL (FRAUD_SERVE_LOGGER_URL; default: none; an empty value switches it off).",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse flags, configure JSON logging, and serve until SIGTERM/SIGINT; returns the exit code."""
    model_server = import_kserve_model_server()
    from fraud.settings import load_settings
    from serving.artifacts import KSERVE_MOUNT
    from serving.logs import configure_logging

    try:
        settings = load_settings()
    except FraudError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return exc.exit_code
    args = build_parser(model_server.parser, settings.model_name).parse_args(argv)
    configure_logging((args.log_level or settings.log_level).upper())
    if args.workers != 1:
        log.error(
            "--workers %d is not supported: run one predictor process per core (KServe scales pods)", args.workers
        )
        return 2
    for name, value in _MLFLOW_CLIENT_ENV.items():
        os.environ.setdefault(name, value)
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    overrides: dict[str, Any] = {}
    if args.alias:
        overrides["model_alias"] = args.alias
    if args.model_version:
        overrides["model_version"] = args.model_version
    if args.model_dir:
        overrides["model_dir"] = args.model_dir
    if args.host:
        overrides["serve_host"] = args.host
    if args.logger_url is not None:  # "" switches off a FRAUD_SERVE_LOGGER_URL from the environment
        overrides["serve_logger_url"] = args.logger_url or None
    settings = settings.model_copy(update=overrides) if overrides else settings

    from serving.predictor import FraudPredictor, source_from_settings
    from serving.server import FraudModelServer

    source = source_from_settings(settings, kserve_mount=KSERVE_MOUNT)
    log.info("serving %s from %s", args.model_name, source.describe())
    predictor = FraudPredictor(args.model_name, source, settings)
    payload_log = None
    if settings.serve_logger_url:
        from serving.payload_log import PredictorLogger, register_metrics

        event_source = f"http://{settings.serve_host}:{args.http_port}/"
        payload_log = PredictorLogger(settings.serve_logger_url, args.model_name, event_source)
        register_metrics(payload_log.sink)
        log.info("payload log: CloudEvents of every REST inference to %s", settings.serve_logger_url)
    server = FraudModelServer(
        host=settings.serve_host,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        enable_grpc=args.enable_grpc,
        max_threads=args.max_threads,
        max_asyncio_workers=args.max_asyncio_workers,
        enable_docs_url=args.enable_docs_url,
        access_log_format=args.access_log_format,
        event_loop=args.event_loop,
        timeout_keep_alive=args.timeout_keep_alive,
        ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile,
        max_body_bytes=settings.serve_max_body_bytes,
        grace_period=settings.serve_grace_period,
        fast_path=settings.serve_fast_path,
        read_timeout=settings.serve_read_timeout,
        payload_log=payload_log,
        grpc_options={
            "grpc_max_send_message_length": args.grpc_max_send_message_length,
            "grpc_max_receive_message_length": args.grpc_max_receive_message_length,
        },
    )
    server.start([predictor])
    return 0


if __name__ == "__main__":
    sys.exit(main())
