"""The collector's HTTP API: routes of `monitoring.collector.http` requests to the `Collector`.

POST /               a binary-mode CloudEvent (also /v1/events): 200 stored|duplicate, 4xx bad, 503 resend
POST /v1/labels      {"labels": [{"request_id", "row", "isFraud", "labeled_at"?}]} → {"accepted", "unknown"}
POST /v1/flush       write what is joined now (?unmatched=1: also the halves still waiting); for tests and ops
GET  /v1/status      counts as JSON (what `fraudctl status` shows)
GET  /metrics        Prometheus text
GET  /healthz        200 once the log is replayed and the collector takes events
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Final

import orjson

from monitoring.collector.http import HttpServer, Reply, Request, Response
from monitoring.collector.service import Collector

log = logging.getLogger(__name__)

_EVENT_PATHS: Final = frozenset({"/", "/v1/events"})
_PROMETHEUS: Final = b"text/plain; version=0.0.4; charset=utf-8"


class CollectorApp:
    def __init__(self, collector: Collector, max_body: int) -> None:
        self.collector = collector
        self.max_body = max_body

    def __call__(self, request: Request) -> Reply:  # noqa: PLR0911 (one return per route)
        method, path = request.method, request.path
        collector = self.collector
        if method == "POST" and path in _EVENT_PATHS:
            if request.too_large:
                return self._oversized()
            return collector.submit(request.headers, request.body)
        if method == "POST" and path == "/v1/labels":
            if request.too_large:
                return self._oversized()
            return collector.ingest_labels(request.body)
        if method == "GET" and path == "/metrics":
            return Response(200, collector.metrics.render(), content_type=_PROMETHEUS)
        if method == "GET" and path == "/healthz":
            return Response(200, b'{"status":"ok"}')
        if method == "GET" and path == "/v1/status":
            return Response(200, orjson.dumps(collector.status()))
        if method == "POST" and path == "/v1/flush":
            return self._flush(all_halves=b"unmatched=1" in request.query)
        collector.metrics.bad["not_found"] += 1
        return Response(404, orjson.dumps({"error": f"no {method} {path}; events go to POST /"}))

    async def _flush(self, *, all_halves: bool) -> Response:
        rows = await self.collector.flush(all_halves=all_halves)
        return Response(200, orjson.dumps({"rows": rows}))

    def _oversized(self) -> Response:
        self.collector.metrics.received["unknown"] += 1
        self.collector.metrics.bad["oversized"] += 1
        message = {
            "error": f"body larger than {self.max_body} bytes (FRAUD_COLLECTOR_MAX_EVENT_BYTES)",
            "reason": "oversized",
        }
        return Response(413, orjson.dumps(message), close=True)


async def serve(collector: Collector, host: str, port: int, max_body: int, grace: float = 30.0) -> None:
    """Replay the log, listen, and on SIGTERM/SIGINT finish what is in flight, flush and stop."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await collector.start()
    server = HttpServer(CollectorApp(collector, max_body), max_body)
    await server.start(host, port)
    log.info("collector listening on http://%s:%d/", host, port)
    await stop.wait()
    log.info("stopping: finishing requests in flight, flushing joined events")
    await server.stop(grace)
    await collector.stop()
