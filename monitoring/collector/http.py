"""A small HTTP/1.1 server for the collector: asyncio protocol + httptools parser, on uvloop.

Why not uvicorn: measured on this machine under load, uvicorn's ASGI plumbing alone cost ~90 µs of CPU per
request, more than everything the collector does with an event, and the collector's whole job is many tiny POSTs.
This server does only what a payload logger and a scraper need: keep-alive, pipelined requests answered in order,
``Content-Length`` and chunked bodies (httptools parses both), a body limit (read and discarded past the limit,
then 413 and close), and a graceful stop that finishes the requests in flight.

A handler answers now (a `Response`), later through a `Deferred` (the hot path: the collector resolves it when
the event's write-ahead group is on disk, and the answer is written in that same call, with no event-loop round
trip as a future's callbacks would take), or through a future or a coroutine (rare routes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Coroutine, Generator
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Final, cast

import httptools

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: bytes
    headers: dict[bytes, bytes]
    """Lower-cased names; a repeated header keeps its last value."""
    body: bytes
    keep_alive: bool
    too_large: bool


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: bytes = b"application/json"
    close: bool = False
    wire: bytes | None = field(default=None, compare=False, repr=False)
    """The whole keep-alive answer, encoded once (`constant`): the hot path writes it as is."""


def constant(status: int, body: bytes) -> Response:
    """A response sent many times (the collector's "stored"): its keep-alive bytes are built here, once."""
    response = Response(status, body)
    return Response(status, body, wire=encode_response(response, keep_alive=True))


class Deferred:
    """A response that comes later, handed to its consumer by a direct call when `resolve` is called.

    Cheaper than a future for the many-tiny-requests path: no loop round trip, no callback handle. Awaitable too
    (through a future, for the coroutines that need one).
    """

    __slots__ = ("_callback", "_response")

    def __init__(self) -> None:
        self._callback: Callable[[Response], None] | None = None
        self._response: Response | None = None

    def resolve(self, response: Response) -> None:
        callback = self._callback
        if callback is None:
            self._response = response
        else:
            self._callback = None
            callback(response)

    def then(self, callback: Callable[[Response], None]) -> None:
        """Call ``callback`` with the response: now if it is there, else when it is resolved (once)."""
        response = self._response
        if response is None:
            self._callback = callback
        else:
            callback(response)

    @property
    def done(self) -> bool:
        return self._response is not None

    def __await__(self) -> Generator[Any, None, Response]:
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()

        def settle(response: Response) -> None:
            if not future.done():
                future.set_result(response)

        self.then(settle)
        return (yield from future.__await__())


Reply = Response | Deferred | asyncio.Future[Response] | Coroutine[Any, Any, Response]
"""A response now, or later through a `Deferred` (the cheap way), a future or a coroutine (run as a task)."""
Handler = Callable[[Request], Reply]
_INTERNAL_ERROR: Final = Response(500, b'{"error":"internal error; the event was not stored, send it again"}')
_REASONS: Final = {status.value: status.phrase.encode() for status in HTTPStatus}


def encode_response(response: Response, keep_alive: bool) -> bytes:
    reason = _REASONS.get(response.status, b"Unknown")
    connection = b"keep-alive" if keep_alive and not response.close else b"close"
    return b"".join(
        (
            b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\nconnection: %s\r\n\r\n"
            % (response.status, reason, response.content_type, len(response.body), connection),
            response.body,
        )
    )


class Connection(asyncio.Protocol):
    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.loop = server.loop
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.pending: deque[Request] = deque()
        self.busy = False
        self.closed = False
        self._current: Request | None = None
        """The request being answered (one at a time; pipelined ones wait in ``pending``)."""
        self._answer_current = self._deferred_done
        self._url = b""
        self._headers: dict[bytes, bytes] = {}
        self._body: list[bytes] = []
        self._size = 0
        self._too_large = False

    # --- asyncio.Protocol ----------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connections.discard(self)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._reply_and_close(Response(400, b'{"error":"protocol upgrades are not supported"}'))
        except httptools.HttpParserError as exc:
            self._reply_and_close(Response(400, b'{"error":"malformed HTTP request: %s"}' % str(exc).encode()[:200]))

    # --- httptools callbacks -------------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = {}
        self._body = []
        self._size = 0
        self._too_large = False

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        length = self._headers.get(b"content-length")
        if length is not None:
            with contextlib.suppress(ValueError):  # httptools itself refuses a malformed length
                self._too_large = int(length) > self.server.max_body

    def on_body(self, body: bytes) -> None:
        if self._too_large:
            return
        self._size += len(body)
        if self._size > self.server.max_body:
            self._too_large = True
            self._body = []
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        path, _, query = self._url.partition(b"?")
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        request = Request(
            method=self.parser.get_method().decode("latin-1"),
            path=path.decode("latin-1"),
            query=query,
            headers=self._headers,
            body=body,
            keep_alive=self.parser.should_keep_alive(),
            too_large=self._too_large,
        )
        if self.busy:
            self.pending.append(request)
        else:
            self._start(request)

    # --- handling ------------------------------------------------------------------------------------------
    def _start(self, request: Request) -> None:
        """Answer at once, or when the handler's future or coroutine is done (the next pipelined one waits)."""
        self.busy = True
        try:
            result = self.server.handler(request)
        except Exception:
            log.exception("handler failed for %s %s", request.method, request.path)
            self._finish(request, _INTERNAL_ERROR)
            return
        if isinstance(result, Response):
            self._finish(request, result)
            return
        if isinstance(result, Deferred):
            self._current = request
            result.then(self._answer_current)
            return
        waiter = result if isinstance(result, asyncio.Future) else self.loop.create_task(result)
        self.server.tasks.add(waiter)
        waiter.add_done_callback(lambda done: self._done(request, done))

    def _deferred_done(self, response: Response) -> None:
        request, self._current = self._current, None
        assert request is not None
        self._finish(request, response)

    def _done(self, request: Request, done: asyncio.Future[Response]) -> None:
        self.server.tasks.discard(done)
        if done.cancelled() or done.exception() is not None:
            if not done.cancelled():
                log.error("handler failed for %s %s", request.method, request.path, exc_info=done.exception())
            self._finish(request, _INTERNAL_ERROR)
            return
        self._finish(request, done.result())

    def _finish(self, request: Request, response: Response) -> None:
        if self.closed or self.transport is None:
            return
        keep_alive = request.keep_alive and not response.close and not self.server.stopping
        wire = response.wire
        self.transport.write(wire if keep_alive and wire is not None else encode_response(response, keep_alive))
        if not keep_alive:
            self.transport.close()
            self.closed = True
            return
        self.busy = False
        if self.pending:
            self._start(self.pending.popleft())

    def _reply_and_close(self, response: Response) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(encode_response(response, keep_alive=False))
            self.transport.close()
        self.closed = True

    def close_if_idle(self) -> None:
        if not self.busy and not self.pending and self.transport is not None:
            self.transport.close()


class HttpServer:
    def __init__(self, handler: Handler, max_body: int) -> None:
        self.handler = handler
        self.max_body = max_body
        self.loop = asyncio.get_running_loop()
        self.connections: set[Connection] = set()
        self.tasks: set[asyncio.Future[Response]] = set()
        self.stopping = False
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> None:
        self._server = await self.loop.create_server(
            lambda: Connection(self), host, port, backlog=2048, reuse_address=True
        )

    async def stop(self, grace: float) -> None:
        """Stop accepting, let the requests in flight finish (up to ``grace`` seconds), close the connections."""
        self.stopping = True
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            connection.close_if_idle()
        deadline = self.loop.time() + grace
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=grace)
        while any(c.busy and not c.closed for c in self.connections) and self.loop.time() < deadline:
            await asyncio.sleep(0.02)  # deferred answers still coming (their write-ahead group is on its way)
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.close()
