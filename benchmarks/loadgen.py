"""An HTTP/1.1 load generator for the serving benchmark: open loop at a fixed rate, or closed loop.

Open loop: request *i* is due at ``t0 + i / rate`` whatever happened to the ones before it. It goes out on an
idle keep-alive connection, or on a new one (up to ``max_connections``), or waits for one to come free; its
latency is measured from the time it was *due*, not from the time it left, so a server that falls behind
shows its queue in the latency instead of silently slowing the generator down ("coordinated omission"). A
request still unanswered ``timeout`` seconds after it was due counts as a timeout (if it never left, it is
dropped unsent; if it did, its connection is closed). Latency percentiles cover every request due in the
measured window, with errors and timeouts ranked as infinitely slow, so a p99 is never flattered by dropping
the worst 1 %.

Closed loop: ``connections`` workers, each sending its next request as soon as the last one was answered: the
maximum a server sustains with that concurrency (and the batch throughput).

The generator is a separate process from every server under test: asyncio on uvloop with httptools' parser
(both in the project's environment), prebuilt request bytes, no JSON work on the hot path, the garbage collector
off during a run. Its own ceiling is measured against `trivial_server`, which answers every request with a
fixed body. The orchestrator (`benchmarks/serving.py`) runs one job per process:

    python -m benchmarks.loadgen run --job job.json          # prints the result as JSON
    python -m benchmarks.loadgen trivial-server --port 18080
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import resource
import struct
import sys
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import httptools
import uvloop

Mode = Literal["open", "closed"]
TIMEOUT = 0
"""Status recorded for a request that got no answer in time."""
CONNECTION_ERROR = -1
"""Status recorded for a request whose connection failed or broke."""
_LENGTH = struct.Struct(">I")


# --- request files ---------------------------------------------------------------------------------------------
def http_request(host: str, port: int, path: str, body: bytes, content_type: str = "application/json") -> bytes:
    """A complete keep-alive HTTP/1.1 POST request."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    )
    return head.encode("ascii") + body


def write_requests(path: Path, requests: Iterable[bytes]) -> int:
    """Store requests as length-prefixed blobs; returns how many."""
    count = 0
    with path.open("wb") as out:
        for request in requests:
            out.write(_LENGTH.pack(len(request)))
            out.write(request)
            count += 1
    return count


def read_requests(path: Path) -> list[bytes]:
    data = path.read_bytes()
    out, offset = [], 0
    while offset < len(data):
        (size,) = _LENGTH.unpack_from(data, offset)
        offset += _LENGTH.size
        out.append(data[offset : offset + size])
        offset += size
    if not out:
        raise ValueError(f"{path} holds no requests")
    return out


# --- jobs and results ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    host: str
    port: int
    requests_file: str
    mode: Mode
    rate: float = 0.0
    """Open loop: requests due per second."""
    duration: float = 10.0
    """Seconds of the measured window."""
    warmup: float = 0.0
    """Seconds of the same load before the window, not measured."""
    connections: int = 4
    """Closed loop: concurrent workers (one connection each). Open loop: connections opened before the start."""
    max_connections: int = 256
    """Open loop: the most connections open at once; beyond that, due requests wait for a free one."""
    timeout: float = 2.0
    """Seconds after its due time (open) or its send time (closed) before a request counts as a timeout."""
    abort_backlog: float = 0.0
    """Open loop: stop early once more than this many seconds' worth of requests are outstanding (0 = never)."""
    expect_status: int = 200

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        return cls(**data)


@dataclass
class Percentiles:
    p50: float
    p90: float
    p99: float
    p999: float
    max: float
    mean: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Percentiles:
        ranked = sorted(values)
        if not ranked:
            nan = math.nan
            return cls(nan, nan, nan, nan, nan, nan)
        finite = [v for v in ranked if math.isfinite(v)]
        return cls(
            p50=percentile(ranked, 50),
            p90=percentile(ranked, 90),
            p99=percentile(ranked, 99),
            p999=percentile(ranked, 99.9),
            max=ranked[-1],
            mean=sum(finite) / len(finite) if finite else math.inf,
        )


def percentile(ranked: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of sorted values (the value at or below which q % of them lie)."""
    if not ranked:
        return math.nan
    rank = max(1, math.ceil(q / 100.0 * len(ranked)))
    return ranked[min(rank, len(ranked)) - 1]


@dataclass
class Result:
    mode: Mode
    offered_rate: float
    """Open loop: the rate asked for; closed loop: 0."""
    window_s: float
    """Length of the measured window actually run (shorter than asked when aborted)."""
    due: int
    """Requests due (open) or sent (closed) in the window."""
    ok: int
    errors: dict[str, int]
    """Non-timeout failures by HTTP status (or 'connection')."""
    timeouts: int
    unsent: int
    """Open loop: requests that never left because no connection came free before their timeout."""
    aborted: bool
    achieved_rate: float
    """Successful answers per second in the window."""
    latency_ms: Percentiles
    """From the due time (open loop) or the send time (closed loop); failures rank as infinite."""
    service_ms: Percentiles
    """From the moment the request was written to the socket, successes only (what a closed-loop tool sees)."""
    send_lag_ms: Percentiles
    """Open loop: how late requests left after they were due (the generator's own delay plus connection waits)."""
    generator_cpu: float
    """CPU seconds the generator used per wall second during the window (1.0 = one core)."""
    connections_opened: int
    error_samples: list[str] = field(default_factory=list)
    ok_total: int = 0
    """Successful answers over the whole run, warm-up included (for per-request server costs)."""

    @property
    def failures(self) -> int:
        return self.timeouts + sum(self.errors.values())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Result:
        values = dict(data)
        for name in ("latency_ms", "service_ms", "send_lag_ms"):
            values[name] = Percentiles(**values[name])
        return cls(**values)


# --- the client --------------------------------------------------------------------------------------------------
class _Connection(asyncio.Protocol):
    """One keep-alive connection; at most one request in flight (no pipelining)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[int] | None = None
        self.closed = False
        self.body: list[bytes] = []
        self.last_body = b""

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(exc)
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(exc or ConnectionResetError("connection closed by the server"))

    # httptools callbacks
    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.last_body = b"".join(self.body)
        self.body.clear()
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(self.parser.get_status_code())
        if not self.parser.should_keep_alive():
            self.close()

    # ours
    def send(self, request: bytes) -> asyncio.Future[int]:
        assert self.transport is not None and self.waiter is None
        self.waiter = self.loop.create_future()
        self.transport.write(request)
        return self.waiter

    def _fail(self, exc: BaseException) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionError(str(exc)))

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class _Pool:
    """Keep-alive connections to one server: reuse an idle one, open a new one under the cap, or queue."""

    def __init__(self, loop: asyncio.AbstractEventLoop, host: str, port: int, max_connections: int) -> None:
        self.loop, self.host, self.port, self.max = loop, host, port, max_connections
        self.idle: list[_Connection] = []
        self.count = 0
        self.opened = 0
        self.waiters: deque[asyncio.Future[_Connection]] = deque()

    async def _open(self) -> _Connection:
        _, protocol = await self.loop.create_connection(lambda: _Connection(self.loop), self.host, self.port)
        self.opened += 1
        return protocol

    def try_acquire(self) -> _Connection | None:
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed:
                return conn
            self.count -= 1
        return None

    async def acquire(self) -> _Connection:
        conn = self.try_acquire()
        if conn is not None:
            return conn
        if self.count < self.max:
            self.count += 1
            try:
                return await self._open()
            except BaseException:
                self.count -= 1
                self._refill()
                raise
        waiter: asyncio.Future[_Connection] = self.loop.create_future()
        self.waiters.append(waiter)
        return await waiter

    def release(self, conn: _Connection) -> None:
        if conn.closed:
            self.discard(conn)
            return
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self.idle.append(conn)

    def discard(self, conn: _Connection) -> None:
        conn.close()
        self.count -= 1
        self._refill()

    def _refill(self) -> None:
        """A connection slot came free: open a connection for the longest-waiting request, if any."""
        while self.waiters and self.waiters[0].done():
            self.waiters.popleft()
        if self.waiters and self.count < self.max:
            waiter = self.waiters.popleft()
            self.count += 1
            task = self.loop.create_task(self._open())

            def hand_over(done: asyncio.Task[_Connection]) -> None:
                if done.cancelled() or done.exception() is not None:
                    self.count -= 1
                    if not waiter.done():
                        waiter.set_exception(ConnectionError("could not open a connection"))
                    return
                conn = done.result()
                if waiter.done():
                    self.release(conn)
                else:
                    waiter.set_result(conn)

            task.add_done_callback(hand_over)

    async def warm(self, count: int) -> None:
        """Open connections ahead of the schedule; a failure here shows up again as the requests' errors."""
        opened = await asyncio.gather(*(self.acquire() for _ in range(min(count, self.max))), return_exceptions=True)
        for conn in opened:
            if isinstance(conn, _Connection):
                self.release(conn)

    def close(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()


@dataclass
class _Record:
    due: float
    sent: float = math.nan
    done: float = math.nan
    status: int = TIMEOUT


class _Run:
    def __init__(self, job: Job, requests: Sequence[bytes]) -> None:
        self.job = job
        self.requests = requests
        self.loop = asyncio.get_running_loop()
        self.pool = _Pool(self.loop, job.host, job.port, job.max_connections if job.mode == "open" else job.connections)
        self.records: list[_Record] = []
        self.outstanding = 0
        self.samples: list[str] = []
        self.aborted = False

    def _finish(self, record: _Record, status: int, conn: _Connection | None) -> None:
        record.done = time.perf_counter()
        record.status = status
        if status != self.job.expect_status and status > 0 and conn is not None and len(self.samples) < 3:
            self.samples.append(f"HTTP {status}: {conn.last_body[:300].decode(errors='replace')}")

    async def _one(self, record: _Record, request: bytes, deadline: float) -> None:
        """Send one request once a connection is free; give up at ``deadline`` (perf_counter seconds)."""
        self.outstanding += 1
        conn: _Connection | None = None
        try:
            conn = self.pool.try_acquire()
            if conn is None:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    return
                try:
                    async with asyncio.timeout(remaining):
                        conn = await self.pool.acquire()
                except TimeoutError:
                    return  # never sent: counted as unsent timeout
                except (OSError, ConnectionError) as exc:
                    record.sent = time.perf_counter()
                    self._finish(record, CONNECTION_ERROR, None)
                    if len(self.samples) < 3:
                        self.samples.append(f"connect: {exc}")
                    return
            record.sent = time.perf_counter()
            waiter = conn.send(request)
            try:
                async with asyncio.timeout(max(deadline - record.sent, 0.0)):
                    status = await waiter
            except TimeoutError:
                self._finish(record, TIMEOUT, None)
                self.pool.discard(conn)
                conn = None
                return
            except ConnectionError as exc:
                self._finish(record, CONNECTION_ERROR, None)
                if len(self.samples) < 3:
                    self.samples.append(f"connection: {exc}")
                self.pool.discard(conn)
                conn = None
                return
            self._finish(record, status, conn)
            self.pool.release(conn)
            conn = None
        finally:
            self.outstanding -= 1
            if conn is not None:  # cancelled mid-flight
                self.pool.discard(conn)

    async def open_loop(self) -> float:
        job = self.job
        await self.pool.warm(job.connections)
        total = round((job.warmup + job.duration) * job.rate)
        interval = 1.0 / job.rate
        backlog_cap = max(50, int(job.abort_backlog * job.rate)) if job.abort_backlog > 0 else 0
        tasks: set[asyncio.Task[None]] = set()
        n = len(self.requests)
        t0 = time.perf_counter() + 0.05
        for i in range(total):
            due = t0 + i * interval
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if backlog_cap and self.outstanding > backlog_cap:
                self.aborted = True
                break
            record = _Record(due)
            self.records.append(record)
            task = self.loop.create_task(self._one(record, self.requests[i % n], due + job.timeout))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if self.aborted:
            for task in list(tasks):
                task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        return t0

    async def closed_loop(self) -> float:
        job = self.job
        t0 = time.perf_counter()
        end = t0 + job.warmup + job.duration
        n = len(self.requests)

        async def worker(offset: int) -> None:
            i = offset
            while time.perf_counter() < end:
                record = _Record(time.perf_counter())
                self.records.append(record)
                await self._one(record, self.requests[i % n], record.due + job.timeout)
                i += job.connections

        await asyncio.gather(*(worker(k) for k in range(job.connections)))
        return t0


async def _run(job: Job) -> Result:
    requests = read_requests(Path(job.requests_file))
    run = _Run(job, requests)
    gc.collect()
    gc.freeze()
    gc.disable()
    cpu_start = resource.getrusage(resource.RUSAGE_SELF)
    wall_start = time.perf_counter()
    try:
        t0 = await (run.open_loop() if job.mode == "open" else run.closed_loop())
    finally:
        gc.enable()
        run.pool.close()
    wall = time.perf_counter() - wall_start
    cpu_end = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu_end.ru_utime - cpu_start.ru_utime) + (cpu_end.ru_stime - cpu_start.ru_stime)
    return summarise(
        job, run.records, t0, run.aborted, cpu / wall if wall > 0 else math.nan, run.pool.opened, run.samples
    )


def summarise(
    job: Job,
    records: Sequence[_Record],
    t0: float,
    aborted: bool,
    generator_cpu: float,
    opened: int,
    samples: list[str],
) -> Result:
    start = t0 + job.warmup
    window = [r for r in records if r.due >= start]
    if job.mode == "open":
        last_due = window[-1].due if window else start
        span = job.duration if not aborted else max(last_due - start, 1e-9)
    else:
        end = max((r.done for r in window if math.isfinite(r.done)), default=start)
        span = max(end - start, 1e-9)
    latency, service, lag = [], [], []
    errors: dict[str, int] = {}
    ok = timeouts = unsent = 0
    for r in window:
        if math.isfinite(r.sent):
            lag.append((r.sent - r.due) * 1000.0)
        if r.status == job.expect_status:
            ok += 1
            latency.append((r.done - r.due) * 1000.0)
            service.append((r.done - r.sent) * 1000.0)
            continue
        latency.append(math.inf)
        if r.status == TIMEOUT:
            timeouts += 1
            if not math.isfinite(r.sent):
                unsent += 1
        else:
            key = "connection" if r.status == CONNECTION_ERROR else str(r.status)
            errors[key] = errors.get(key, 0) + 1
    completed_in_window = sum(1 for r in window if r.status == job.expect_status and r.done <= start + span + 1e-9)
    return Result(
        mode=job.mode,
        offered_rate=job.rate if job.mode == "open" else 0.0,
        window_s=span,
        due=len(window),
        ok=ok,
        errors=errors,
        timeouts=timeouts,
        unsent=unsent,
        aborted=aborted,
        achieved_rate=completed_in_window / span,
        latency_ms=Percentiles.of(latency),
        service_ms=Percentiles.of(service),
        send_lag_ms=Percentiles.of(lag),
        generator_cpu=generator_cpu,
        connections_opened=opened,
        error_samples=samples,
        ok_total=sum(1 for r in records if r.status == job.expect_status),
    )


def run_job(job: Job) -> Result:
    return uvloop.run(_run(job))


# --- the trivial server (for the generator's own ceiling) ------------------------------------------------------
_TRIVIAL_BODY = b'{"predictions":[{"fraud_probability":0.0}]}'
_TRIVIAL_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(_TRIVIAL_BODY)).encode()
    + b"\r\n\r\n"
    + _TRIVIAL_BODY
)


class _TrivialProtocol(asyncio.Protocol):
    """Answers each request with a fixed body; with ``service_s`` it first blocks the event loop that long, like a
    single-threaded CPU-bound server (capacity 1 / service_s requests per second), for testing the generator."""

    def __init__(self, service_s: float) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.service_s = service_s

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.close()

    def on_message_complete(self) -> None:
        if self.service_s > 0:
            time.sleep(self.service_s)
        if self.transport is not None:
            self.transport.write(_TRIVIAL_RESPONSE)


async def _serve_trivial(host: str, port: int, service_s: float) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _TrivialProtocol(service_s), host, port, backlog=1024)
    print(f"trivial server on http://{host}:{port}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run one job (JSON file) and print its result as JSON")
    run.add_argument("--job", type=Path, required=True)
    trivial = sub.add_parser("trivial-server", help="answer every request with a fixed 200 (generator ceiling)")
    trivial.add_argument("--host", default="127.0.0.1")
    trivial.add_argument("--port", type=int, required=True)
    trivial.add_argument("--service-ms", type=float, default=0.0, help="block this long per request (testing)")
    args = parser.parse_args(argv)
    if args.command == "run":
        job = Job.from_dict(json.loads(args.job.read_text()))
        result = run_job(job)
        json.dump(result.to_dict(), sys.stdout, allow_nan=True)
        sys.stdout.write("\n")
        return 0
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(_serve_trivial(args.host, args.port, args.service_ms / 1000.0))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
