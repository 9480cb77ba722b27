"""A minimal keep-alive HTTP/1.1 client for the splitter's calls to its predictors (and the payload logger's posts
to the collector, `serving.payload_log`).

Why not aiohttp or httpx: the splitter adds its client's cost to every answer, and its budget is half a
millisecond. A general client spends most of that on features the splitter never uses (cookies, redirects,
middlewares, header objects, per-request timeouts built from tasks). This one writes prebuilt request bytes on an
idle pooled connection, parses the answer with httptools (the parser uvicorn uses), and times out with one
``call_later`` per request. It speaks only to our predictors on loopback: POST and GET, ``Content-Length`` bodies
or chunked ones (httptools decodes both), no TLS, no proxies.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import httptools


class UpstreamError(ConnectionError):
    """The predictor could not be reached, closed the connection, or did not answer in time."""


@dataclass(frozen=True)
class Reply:
    """A predictor's answer: status, the headers the splitter passes on, and the body."""

    status: int
    content_type: bytes
    body: bytes


class _Connection(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[Reply] | None = None
        self.closed = False
        self.chunks: list[bytes] = []
        self.content_type = b"application/json"
        self._header = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError(f"malformed answer from the predictor: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(UpstreamError(f"the predictor closed the connection ({exc or 'EOF'})"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"content-type":
            self.content_type = value

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        body = b"".join(self.chunks)
        self.chunks.clear()
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(Reply(self.parser.get_status_code(), self.content_type, body))
        self.content_type = b"application/json"
        if not self.parser.should_keep_alive():
            self.close()

    def send(self, request: bytes) -> asyncio.Future[Reply]:
        assert self.transport is not None and self.waiter is None
        self.waiter = self.loop.create_future()
        self.transport.write(request)
        return self.waiter

    def _fail(self, exc: BaseException) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def timeout(self) -> None:
        self._fail(UpstreamError("the predictor did not answer in time"))
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Upstream:
    """Keep-alive connections to one predictor: reuse an idle one, open a new one under the cap, or queue."""

    def __init__(self, url: str, *, max_connections: int = 256, timeout_s: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ValueError(f"upstream URL must look like http://HOST:PORT, got '{url}'")
        self.url = url.rstrip("/")
        self.host = parts.hostname
        self.port = parts.port
        self.max_connections = max_connections
        self.timeout_s = timeout_s
        self._host_header = f"Host: {self.host}:{self.port}\r\n".encode("ascii")
        self._idle: list[_Connection] = []
        self._count = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    def request_bytes(self, method: bytes, path: bytes, body: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
        """A complete request; ``headers`` are passed as given (names without CR/LF, which uvicorn guarantees)."""
        head = [method, b" ", path, b" HTTP/1.1\r\n", self._host_header]
        for name, value in headers:
            head += [name, b": ", value, b"\r\n"]
        head += [b"Content-Length: ", str(len(body)).encode("ascii"), b"\r\n\r\n"]
        return b"".join(head) + body

    async def _acquire(self) -> _Connection:
        loop = asyncio.get_running_loop()
        while True:
            while self._idle:
                conn = self._idle.pop()
                if not conn.closed:
                    return conn
                self._count -= 1
            if self._count < self.max_connections:
                self._count += 1
                try:
                    _, protocol = await asyncio.wait_for(
                        loop.create_connection(lambda: _Connection(loop), self.host, self.port), self.timeout_s
                    )
                except (OSError, TimeoutError) as exc:
                    self._count -= 1
                    self._wake()
                    raise UpstreamError(f"cannot connect to the predictor at {self.url}: {exc}") from exc
                return protocol
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            await waiter

    def _release(self, conn: _Connection) -> None:
        if conn.closed:
            self._count -= 1
        else:
            self._idle.append(conn)
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def send(self, request: bytes) -> Reply:
        """Send prebuilt request bytes and wait for the answer (`UpstreamError` on failure or timeout)."""
        conn = await self._acquire()
        future = conn.send(request)
        handle = conn.loop.call_later(self.timeout_s, conn.timeout)
        try:
            return await future
        finally:
            handle.cancel()
            if not future.done():  # cancelled while waiting: the answer would arrive on a reused connection
                conn.waiter = None
                conn.close()
            self._release(conn)

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()
