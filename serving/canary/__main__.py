"""Splitter entrypoint: ``python -m serving.canary --port P --route-file F [--champion-url U --champion-version V]``.

Runs `serving.canary.splitter.Splitter` on 127.0.0.1 with the splitter's own small HTTP server
(`serving.canary.server`: uvloop and httptools, no framework; ``--server uvicorn`` runs it under uvicorn instead).
The route comes from ``--route-file`` when it exists (a restarted splitter routes as before), else from the
``--champion-*`` / ``--challenger-*`` flags, which are then written to that file. SIGTERM stops it cleanly.

Examples::

    python -m serving.canary --port 8080 --route-file .fraud/canary/route.json \\
        --champion-url http://127.0.0.1:8090 --champion-version 3 \\
        --challenger-url http://127.0.0.1:8092 --challenger-version 4 --weight 5
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import uvicorn

from serving.canary.splitter import Route, Splitter, Target, read_route, write_route

log = logging.getLogger("serving.canary")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m serving.canary", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True, help="Port to serve on (127.0.0.1 only).")
    parser.add_argument("--host", default="127.0.0.1", help="Bind address (keep loopback locally).")
    parser.add_argument("--route-file", type=Path, required=True, help="Where the route is kept (JSON).")
    parser.add_argument("--champion-url", help="Champion predictor base URL, when the route file does not exist.")
    parser.add_argument("--champion-version", help="Registry version the champion serves.")
    parser.add_argument("--challenger-url", help="Challenger predictor base URL.")
    parser.add_argument("--challenger-version", help="Registry version the challenger serves.")
    parser.add_argument("--weight", type=float, default=0.0, help="Percent of requests sent to the challenger.")
    parser.add_argument("--shadow", action="store_true", help="Copy the champion's traffic to the challenger.")
    parser.add_argument("--salt", default="canary", help="Hash key of the sticky split.")
    parser.add_argument("--model-name", default="fraud-detector", help="Model name in the inference routes.")
    parser.add_argument("--collector-url", default=None, help="Send CloudEvents of every request/response here.")
    parser.add_argument("--timeout", type=float, default=10.0, help="Seconds before a predictor call fails.")
    parser.add_argument("--log-level", default="info", help="Log level.")
    parser.add_argument(
        "--server", choices=["raw", "uvicorn"], default="raw", help="HTTP server: the splitter's own, or uvicorn."
    )
    return parser


def initial_route(args: argparse.Namespace) -> Route:
    """The route file's route, else the one the flags describe (written to the file)."""
    if args.route_file.is_file():
        return read_route(args.route_file)
    if not args.champion_url or not args.champion_version:
        raise SystemExit(f"error: {args.route_file} does not exist; give --champion-url and --champion-version")
    challenger = None
    if args.challenger_url:
        challenger = Target(args.challenger_url, args.challenger_version or "?")
    route = Route(Target(args.champion_url, args.champion_version), challenger, args.weight, args.shadow, args.salt)
    write_route(args.route_file, route)
    return route


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    route = initial_route(args)
    app = Splitter(
        route,
        route_path=args.route_file,
        model_name=args.model_name,
        collector_url=args.collector_url,
        timeout_s=args.timeout,
    )
    log.info("splitter on http://%s:%d, route %s", args.host, args.port, route.to_json())
    if args.server == "raw":
        import uvloop

        from serving.canary.server import serve

        uvloop.run(serve(app, args.host, args.port))
        return 0
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level=args.log_level.lower(),
        timeout_keep_alive=30,
    )
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
