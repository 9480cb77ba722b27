"""A minimal HTTP/1.1 server for the splitter: just enough ASGI to run `Splitter`, on uvloop and httptools.

Why not uvicorn: every millisecond the splitter spends is added to every answer, and on a small machine its CPU
is taken from the predictors. uvicorn is general (streaming bodies, flow control, many protocol corners), and
about half of the splitter's CPU per request went there. This server handles exactly what the splitter needs:
keep-alive connections, one request at a time per connection (reading pauses while a request is being answered,
so a pipelining client is served in order), ``Content-Length`` or chunked request bodies (httptools decodes both),
one write per response, and the ASGI lifespan events. ``python -m serving.canary --server uvicorn`` runs the
same app under uvicorn instead (for comparison, `benchmarks/splitter.py --server`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, MutableMapping
from http import HTTPStatus
from typing import Any, cast

import httptools

log = logging.getLogger(__name__)

App = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]

_REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}
_MAX_BODY = 64 * 1024 * 1024


class _Connection(asyncio.Protocol):
    def __init__(self, app: App, loop: asyncio.AbstractEventLoop, connections: set[_Connection]) -> None:
        self.app = app
        self.loop = loop
        self.connections = connections
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.size = 0
        self.busy = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's
        self.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._reply_and_close(400, b'{"error":"protocol upgrades are not supported"}')
        except httptools.HttpParserError as exc:
            self._reply_and_close(400, b'{"error":"malformed HTTP request: %s"}' % str(exc).encode()[:200])

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.body = []
        self.size = 0

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > _MAX_BODY:
            self._reply_and_close(413, b'{"error":"request body too large"}')
            return
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.transport is None:
            return
        self.transport.pause_reading()  # one request at a time per connection
        self.busy = True
        parsed = httptools.parse_url(self.url)
        scope: dict[str, Any] = {
            "type": "http",
            "method": self.parser.get_method().decode("ascii"),
            "path": parsed.path.decode("utf-8", "replace"),
            "query_string": parsed.query or b"",
            "headers": self.headers,
        }
        body = b"".join(self.body)
        keep_alive = self.parser.should_keep_alive()
        self.loop.create_task(self._run(scope, body, keep_alive))

    async def _run(self, scope: dict[str, Any], body: bytes, keep_alive: bool) -> None:
        status = 500
        headers: list[tuple[bytes, bytes]] = []
        chunks: list[bytes] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            nonlocal status, headers
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        try:
            await self.app(scope, receive, send)
        except Exception:
            log.exception("unhandled error answering %s %s", scope["method"], scope["path"])
            status, headers, chunks = 500, [(b"content-type", b"application/json")], [b'{"error":"internal error"}']
        payload = b"".join(chunks)
        head = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Unknown"))]
        for name, value in headers:
            if name.lower() != b"content-length":
                head.append(name + b": " + value + b"\r\n")
        head.append(b"content-length: %d\r\n" % len(payload))
        if not keep_alive:
            head.append(b"connection: close\r\n")
        head.append(b"\r\n")
        self.busy = False
        if self.transport is None:
            return
        self.transport.write(b"".join(head) + payload)
        if keep_alive:
            self.transport.resume_reading()
        else:
            self.transport.close()

    def _reply_and_close(self, status: int, body: bytes) -> None:
        if self.transport is None:
            return
        reason = _REASONS.get(status, b"Error")
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
            % (status, reason, len(body))
            + body
        )
        self.transport.close()


async def _lifespan(app: App, event: str) -> None:
    """Send one lifespan event (startup or shutdown) to the app and wait for its completion message."""
    done = asyncio.Event()

    async def receive() -> dict[str, Any]:
        return {"type": f"lifespan.{event}"}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"].startswith(f"lifespan.{event}."):
            done.set()
            raise _LifespanDoneError

    with contextlib.suppress(_LifespanDoneError):
        await app({"type": "lifespan"}, receive, send)
    if not done.is_set():
        raise RuntimeError(f"the app did not complete lifespan.{event}")


class _LifespanDoneError(Exception):
    """Ends the app's lifespan loop after the one event this server sends."""


async def serve(app: App, host: str, port: int, *, grace_s: float = 10.0) -> None:
    """Serve ``app`` on ``host:port`` until SIGTERM/SIGINT; then stop accepting and let answers finish."""
    loop = asyncio.get_running_loop()
    await _lifespan(app, "startup")
    connections: set[_Connection] = set()
    server = await loop.create_server(lambda: _Connection(app, loop, connections), host, port, backlog=2048)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("serving on http://%s:%d", host, port)
    await stop.wait()
    server.close()
    deadline = loop.time() + grace_s
    while any(conn.busy for conn in connections) and loop.time() < deadline:
        await asyncio.sleep(0.05)
    for conn in list(connections):
        if conn.transport is not None:
            conn.transport.close()
    await _lifespan(app, "shutdown")
