"""``python -m monitoring.collector``: the inference-log collector as a server (what `fraudctl up` and a pod run).

Settings come from the environment (`fraud.settings.Settings`: ``FRAUD_COLLECTOR_*``, ``FRAUD_MONITOR_LOG_BUCKET``,
the S3 endpoint and keys); the flags override the address and the log directory.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import uvicorn

from fraud.errors import FraudError
from fraud.settings import load_settings
from fraud.store import ObjectStore
from monitoring.collector.app import CollectorApp
from monitoring.collector.service import Collector


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monitoring.collector", description=__doc__)
    parser.add_argument("--host", help="address to bind (default FRAUD_STACK_HOST, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default FRAUD_COLLECTOR_PORT)")
    parser.add_argument("--wal-dir", type=Path, help="write-ahead log directory (default FRAUD_COLLECTOR_WAL_DIR)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        overrides: dict[str, object] = {}
        if args.wal_dir is not None:
            overrides["collector_wal_dir"] = args.wal_dir
        settings = load_settings(**overrides)
        store = ObjectStore.from_settings(settings)
    except FraudError as exc:
        logging.getLogger("monitoring.collector").error("%s", exc)
        return 2
    collector = Collector(settings, store)
    app = CollectorApp(collector, settings.collector_max_event_bytes)
    config = uvicorn.Config(
        app,
        host=args.host or settings.stack_host,
        port=args.port or settings.collector_port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        backlog=2048,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=30,
        limit_max_requests=None,
    )
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
