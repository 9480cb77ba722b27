"""The collector's HTTP API as a raw ASGI application (no framework on the hot path).

POST /               a binary-mode CloudEvent (also /v1/events): 200 stored|duplicate, 4xx bad, 503 resend
POST /v1/labels      {"labels": [{"request_id", "row", "isFraud", "labeled_at"?}]} → {"accepted", "unknown"}
POST /v1/flush       write what is joined now (?unmatched=1: also the halves still waiting); for tests and ops
GET  /v1/status      counts as JSON (what `fraudctl status` shows)
GET  /metrics        Prometheus text
GET  /healthz        200 once the log is replayed and the collector takes events
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

import orjson

from monitoring.collector.service import Answer, Collector

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_JSON: Final = [(b"content-type", b"application/json")]
_TEXT: Final = [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")]
_EVENT_PATHS: Final = frozenset({"/", "/v1/events"})


class BodyTooLargeError(Exception):
    pass


class CollectorApp:
    def __init__(self, collector: Collector, max_body: int) -> None:
        self.collector = collector
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.collector.start()
                except Exception as exc:
                    log.exception("collector failed to start")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.collector.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method, path = scope["method"], scope["path"]
        collector = self.collector
        if method == "POST" and (path in _EVENT_PATHS or path == "/v1/labels"):
            try:
                body = await self._body(scope, receive)
            except BodyTooLargeError:
                collector.metrics.received["unknown"].inc()
                collector.metrics.bad["oversized"].inc()
                await _respond(
                    send,
                    Answer(
                        413, orjson.dumps({"error": f"body larger than {self.max_body} bytes", "reason": "oversized"})
                    ),
                    close=True,
                )
                return
            if path == "/v1/labels":
                answer = await collector.ingest_labels(body)
            else:
                answer = await collector.ingest(scope["headers"], body)
        elif method == "GET" and path == "/metrics":
            await _respond(send, Answer(200, collector.metrics.render()), headers=_TEXT)
            return
        elif method == "GET" and path == "/healthz":
            answer = Answer(200, b'{"status":"ok"}')
        elif method == "GET" and path == "/v1/status":
            answer = Answer(200, orjson.dumps(collector.status()))
        elif method == "POST" and path == "/v1/flush":
            unmatched = b"unmatched=1" in scope.get("query_string", b"")
            rows = await collector.flush(unmatched=unmatched)
            answer = Answer(200, orjson.dumps({"rows": rows}))
        else:
            collector.metrics.bad["not_found"].inc()
            answer = Answer(404, orjson.dumps({"error": f"no {method} {path}; events go to POST /"}))
        await _respond(send, answer)

    async def _body(self, scope: Scope, receive: Receive) -> bytes:
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    if int(value) > self.max_body:
                        raise BodyTooLargeError
                except ValueError:
                    pass
                break
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > self.max_body:
                    raise BodyTooLargeError
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _respond(
    send: Send, answer: Answer, *, headers: list[tuple[bytes, bytes]] = _JSON, close: bool = False
) -> None:
    extra = [(b"connection", b"close")] if close else []
    await send(
        {
            "type": "http.response.start",
            "status": answer.status,
            "headers": [*headers, (b"content-length", str(len(answer.body)).encode()), *extra],
        }
    )
    await send({"type": "http.response.body", "body": answer.body})
