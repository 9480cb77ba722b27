"""Binary-mode CloudEvents for the collector benchmarks, and a keep-alive sender that records what was acknowledged.

Event ``i`` is half of transaction ``i // 2`` (even: the request, odd: the response), with ce-id ``tx-<i // 2>``,
so any subset of events can be rebuilt and resent by index, and the store can be checked against the indexes
the collector acknowledged. Bodies are what `serving` sends and answers (V1, ``rows`` transactions each).

    python -m benchmarks.collector_events send --port P --first 0 --count 200000 --connections 32 \
        --acked acked.bin [--duration 20] [--indexes todo.npy]

prints one JSON line: sent, acked, duplicates, errors, seconds, events/s, and the generator's CPU use.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import resource
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httptools
import numpy as np
import uvloop

TYPES = ("request", "response")
_TYPES = [f"org.kubeflow.serving.inference.{t}" for t in TYPES]


def event_id(index: int) -> str:
    return f"tx-{index // 2}"


def transaction(tx: int, row: int) -> bytes:
    """A deterministic PaySim-like transaction (heavy-tailed amount)."""
    mix = (tx * 2654435761 + row * 40503) & 0xFFFFFFFF
    amount = _AMOUNTS[mix % 100000]
    return _TRANSACTION % (
        1 + mix % 743,
        _KINDS[mix % 5],
        repr(amount).encode(),
        mix,
        amount * 2,
        mix >> 3,
    )


_TRANSACTION = (
    b'{"step":%d,"type":"%s","amount":%s,"nameOrig":"C%d","oldbalanceOrg":%r,"nameDest":"M%d","oldbalanceDest":0.0}'
)
_KINDS = (b"CASH_OUT", b"PAYMENT", b"CASH_IN", b"TRANSFER", b"DEBIT")
_DECISIONS = (b"allow", b"allow", b"allow", b"review", b"block")
_AMOUNTS = [round(10 ** (1 + k / 20000), 2) for k in range(100000)]
_REASONS = b'[{"reason":"amount 8.2\xc3\x97 the usual for TRANSFER","feature":"amount","contribution":1.1}]'


def prediction(tx: int, row: int, version: str) -> bytes:
    mix = (tx * 2654435761 + row * 40503) & 0xFFFFFFFF
    decision = _DECISIONS[mix % 5]
    return b'{"fraud_probability":%r,"decision":"%s","model_version":"%s","reasons":%s}' % (
        (mix % 1000) / 1000,
        decision,
        version.encode(),
        _REASONS if decision != b"allow" else b"[]",
    )


def body(index: int, rows: int = 1, version: str = "1") -> bytes:
    tx = index // 2
    if index % 2 == 0:
        return b'{"instances":[' + b",".join([transaction(tx, r) for r in range(rows)]) + b"]}"
    return b'{"predictions":[' + b",".join([prediction(tx, r, version) for r in range(rows)]) + b"]}"


def headers(index: int) -> list[tuple[str, str]]:
    return [
        ("ce-specversion", "1.0"),
        ("ce-id", event_id(index)),
        ("ce-type", _TYPES[index % 2]),
        ("ce-source", "champion"),
        ("ce-time", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())),
        ("ce-inferenceservicename", "fraud-detector"),
        ("ce-namespace", "local"),
        ("ce-component", "champion"),
        ("ce-endpoint", "champion"),
        ("content-type", "application/json"),
    ]


_HEAD = (
    b"POST / HTTP/1.1\r\nHost: %s\r\nce-specversion: 1.0\r\nce-id: tx-%d\r\nce-type: %s\r\nce-source: champion\r\n"
    b"ce-time: %s\r\nce-inferenceservicename: fraud-detector\r\nce-namespace: local\r\nce-component: champion\r\n"
    b"ce-endpoint: champion\r\ncontent-type: application/json\r\nContent-Length: %d\r\n\r\n"
)
_TYPES_RAW = [t.encode() for t in _TYPES]
_clock: list[object] = [0, b""]


def _now() -> bytes:
    """``ce-time`` to the second, formatted once per second (the sender's CPU is part of what is measured)."""
    second = int(time.time())
    if _clock[0] != second:
        _clock[0], _clock[1] = second, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second)).encode()
    return cast(bytes, _clock[1])


def http_request(host: str, port: int, index: int, rows: int = 1) -> bytes:
    """The whole HTTP request of event ``index`` (what `headers` and `body` describe), built from a template."""
    payload = body(index, rows)
    head = _HEAD % (b"%s:%d" % (host.encode(), port), index // 2, _TYPES_RAW[index % 2], _now(), len(payload))
    return head + payload


class _Connection(asyncio.Protocol):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.chunks: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionResetError("closed"))

    def on_body(self, data: bytes) -> None:
        self.chunks.append(data)

    def on_message_complete(self) -> None:
        waiter, self.waiter = self.waiter, None
        data = b"".join(self.chunks)
        self.chunks.clear()
        if waiter is not None and not waiter.done():
            waiter.set_result((self.parser.get_status_code(), data))

    def _fail(self, exc: BaseException) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionError(str(exc)))

    def send(self, request: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None
        self.waiter = self.loop.create_future()
        self.transport.write(request)
        return self.waiter


async def _send(
    host: str, port: int, indexes: Iterator[int], connections: int, duration: float, rows: int, acked_path: Path
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    acked: list[int] = []
    per_second: list[int] = [0] * (int(duration) + 2 if duration > 0 else 1)
    """Acknowledgements in each second of the run (a timed run only): shows whether the rate held."""
    clock = time.perf_counter
    counts = {"sent": 0, "acked": 0, "duplicates": 0, "errors": 0, "connection_errors": 0}
    deadline = time.perf_counter() + duration if duration > 0 else float("inf")
    started = time.perf_counter()

    async def worker() -> None:
        conn: _Connection | None = None
        for index in indexes:
            if time.perf_counter() > deadline:
                return
            try:
                if conn is None:
                    _, conn = await loop.create_connection(lambda: _Connection(loop), host, port)
                counts["sent"] += 1
                status, answer = await conn.send(http_request(host, port, index, rows))
            except (ConnectionError, OSError):
                counts["connection_errors"] += 1
                conn = None
                await asyncio.sleep(0.05)
                if counts["connection_errors"] > 50 * connections:
                    return  # the collector is gone (the crash benchmark kills it)
                continue
            if status == 200:
                counts["acked"] += 1
                acked.append(index)
                second = int(clock() - started)
                if second < len(per_second):
                    per_second[second] += 1
                if b"duplicate" in answer:
                    counts["duplicates"] += 1
            else:
                counts["errors"] += 1

    cpu = resource.getrusage(resource.RUSAGE_SELF)
    await asyncio.gather(*(worker() for _ in range(connections)))
    seconds = time.perf_counter() - started
    used = resource.getrusage(resource.RUSAGE_SELF)
    np.asarray(acked, dtype=np.int64).tofile(acked_path)
    return {
        **counts,
        "seconds": round(seconds, 3),
        "events_per_s": round(counts["acked"] / seconds, 1) if seconds else 0.0,
        "generator_cpu": round((used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime) / seconds, 2),
        "per_second": per_second[: int(seconds)] if duration > 0 else [],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    send = sub.add_parser("send", help="send events, record the acknowledged indexes")
    send.add_argument("--host", default="127.0.0.1")
    send.add_argument("--port", type=int, required=True)
    send.add_argument("--first", type=int, default=0, help="first event index")
    send.add_argument("--count", type=int, default=0, help="events to send (0: until --duration)")
    send.add_argument("--indexes", type=Path, help="a .npy of event indexes to send instead of first/count")
    send.add_argument("--connections", type=int, default=32, help="concurrent keep-alive connections")
    send.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: send all)")
    send.add_argument("--rows", type=int, default=1, help="transactions per request")
    send.add_argument("--acked", type=Path, required=True, help="file for the acknowledged indexes (int64)")
    args = parser.parse_args(argv)
    if args.indexes is not None:
        todo: Iterator[int] = iter(np.load(args.indexes).tolist())
    elif args.count:
        todo = iter(range(args.first, args.first + args.count))
    else:
        todo = iter(range(args.first, sys.maxsize))
    gc.disable()
    uvloop.install()
    result = asyncio.run(_send(args.host, args.port, todo, args.connections, args.duration, args.rows, args.acked))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
