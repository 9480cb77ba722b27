"""``python -m monitoring.collector``: the inference-log collector as a server (what `fraudctl up` and a pod run).

Settings come from the environment (`fraud.settings.Settings`: ``FRAUD_COLLECTOR_*``, ``FRAUD_MONITOR_LOG_BUCKET``,
the S3 endpoint and keys); the flags override the address and the log directory.
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from pathlib import Path

import uvloop

from fraud.errors import FraudError
from fraud.settings import load_settings
from fraud.store import ObjectStore
from monitoring.collector.app import serve
from monitoring.collector.service import Collector

log = logging.getLogger("monitoring.collector")


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
        collector = Collector(settings, ObjectStore.from_settings(settings))
        gc.freeze()  # what the imports made lives as long as the process: later collections need not walk it
        host, port = args.host or settings.stack_host, args.port or settings.collector_port
        uvloop.run(serve(collector, host, port, settings.collector_max_event_bytes))
    except FraudError as exc:
        log.error("%s", exc)
        return 2
    except OSError as exc:
        log.error("cannot serve: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
