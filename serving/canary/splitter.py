"""The local traffic splitter: one KServe-compatible endpoint in front of the champion and challenger predictors.

Clients call it exactly as they call a predictor (KServe V1 ``:predict`` and V2 ``/infer`` REST, health,
readiness, model metadata, ``/metrics``); only ``model_version`` in the answer (and the ``x-canary-arm`` header)
tells which model scored. What it does per inference request:

1. **Sticky split.** The request goes to the challenger when a keyed hash of the paying account (``nameOrig``)
   falls in the challenger's share (`bucket`), so one customer meets one model during a step, and a customer
   that met the challenger at 5 % still meets it at 25 %. A request carrying several transactions is kept whole
   and routed by its *first* row's ``nameOrig``: splitting a batch would turn one answer into two partial ones
   from different models. Requests without a readable ``nameOrig`` go to the champion (which answers them, with
   a 400 if they are invalid). The hash key (``salt``) is the rollout's, so each rollout picks its own customers.
2. **Shadow.** With ``shadow`` on, every request the champion serves is also sent to the challenger in a
   background task; the client gets the champion's answer as soon as it exists and never waits for the copy.
   Copies in flight are capped (`SHADOW_MAX_IN_FLIGHT`); beyond that they are skipped and counted.
3. **Evidence.** Per arm: latency and failure of every request, score and decision of every scored row, and in
   shadow the (champion, challenger) pairs of the same request. The controller takes them (``POST
   /canary/window``) each analysis interval and builds `serving.canary.evidence.Window` objects from them; 4xx
   answers (the client's fault, the same on both arms) are counted but are not evidence.
4. **Payload log.** Each call to an arm is emitted as two CloudEvents (request and response, binary mode, the
   request id as ``ce-id``, the arm as ``ce-source``), the way KServe's payload logger does, to the collector when
   one is configured; a shadow call's events carry the id plus ``-shadow`` (`SHADOW_ID_SUFFIX`), since a
   collector deduplicates redelivered events by id and type. Events go through a bounded queue drained by
   background workers: they never delay an answer, and when the collector is slow they are dropped and counted
   (``canary_events_dropped_total``); the sink is `serving.payload_log.EventSink`, shared with the predictor.

The request id is the client's ``x-request-id`` header, else the body's ``id``, else a fresh UUID4; it is passed
to the arm in ``x-request-id`` and returned in the answer's ``x-request-id``.

Routing is a `Route` read from a JSON file at start and replaced through ``PUT /canary/route`` (which writes the
file first, so a restarted splitter routes as before). The admin routes under ``/canary/`` are for the local
controller; the splitter binds 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
import uuid
from array import array
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import orjson

from serving.payload_log import EventSink
from serving.upstream import Reply, Upstream, UpstreamError

log = logging.getLogger(__name__)

CHAMPION: Final = "champion"
CHALLENGER: Final = "challenger"
ARMS: Final = (CHAMPION, CHALLENGER)
BUCKETS: Final = 10_000
"""Hash buckets: a weight in percent maps to ``weight * 100`` of them (so 0.01 % granularity is available)."""
SHADOW_MAX_IN_FLIGHT: Final = 256
PENDING_PAIRS_MAX: Final = 20_000
DECISION_CODE: Final = {"allow": 0, "review": 1, "block": 2}
ARM_HEADER: Final = b"x-canary-arm"
SHADOW_ID_SUFFIX: Final = "-shadow"
"""Appended to the CloudEvents id of a shadow call: the challenger's copy of a request is another inference, and a
collector that drops repeated (id, type) pairs as redeliveries must keep both. Labels join on the id without it."""

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


# --------------------------------------------------------------------------------------------- routing


@dataclass(frozen=True)
class Target:
    """A predictor process: where it listens and which registry version it serves."""

    url: str
    version: str


@dataclass(frozen=True)
class Route:
    """Where requests go: the champion, the challenger (if any) with its share in percent, shadow on or off."""

    champion: Target
    challenger: Target | None = None
    weight: float = 0.0
    shadow: bool = False
    salt: str = "canary"

    def __post_init__(self) -> None:
        if not 0.0 <= self.weight <= 100.0:
            raise ValueError(f"weight: {self.weight} is outside 0..100 (percent of requests to the challenger)")
        if self.challenger is None and (self.weight > 0 or self.shadow):
            raise ValueError("weight/shadow: a route without a challenger can send it nothing")

    @property
    def threshold(self) -> int:
        """Buckets below this go to the challenger."""
        return round(self.weight * BUCKETS / 100.0)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Route:
        challenger = data.get("challenger")
        return cls(
            champion=Target(**data["champion"]),
            challenger=None if challenger is None else Target(**challenger),
            weight=float(data.get("weight", 0.0)),
            shadow=bool(data.get("shadow", False)),
            salt=str(data.get("salt", "canary")),
        )


def bucket(key: str, salt: str) -> int:
    """The hash bucket (0 … BUCKETS-1) of an account id under a rollout's salt: stable across processes."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8, key=salt.encode()[:64]).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def read_route(path: Path) -> Route:
    return Route.from_json(orjson.loads(path.read_bytes()))


def write_route(path: Path, route: Route) -> None:
    """Atomically replace the route file (write a sibling, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    with tmp.open("wb") as handle:
        handle.write(orjson.dumps(route.to_json(), option=orjson.OPT_INDENT_2))
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


# --------------------------------------------------------------------------------------------- evidence


@dataclass
class ArmRecorder:
    """What one arm answered since the controller last took the evidence, plus running totals for /metrics."""

    latencies_ms: array[float] = field(default_factory=lambda: array("d"))
    failed: array[int] = field(default_factory=lambda: array("b"))
    scores: array[float] = field(default_factory=lambda: array("d"))
    decisions: array[int] = field(default_factory=lambda: array("b"))
    requests_total: int = 0
    errors_total: int = 0
    rejected_total: int = 0
    rows_total: int = 0
    decisions_total: list[int] = field(default_factory=lambda: [0, 0, 0])
    latency_sum_ms: float = 0.0

    def failure(self, latency_ms: float) -> None:
        self.requests_total += 1
        self.errors_total += 1
        self.latency_sum_ms += latency_ms
        self.latencies_ms.append(latency_ms)
        self.failed.append(1)

    def answer(self, latency_ms: float, scores: list[float], codes: list[int]) -> None:
        self.requests_total += 1
        self.rows_total += len(scores)
        self.latency_sum_ms += latency_ms
        self.latencies_ms.append(latency_ms)
        self.failed.append(0)
        self.scores.extend(scores)
        self.decisions.extend(codes)
        for code in codes:
            self.decisions_total[code] += 1

    def take(self) -> dict[str, list[float] | list[int]]:
        """The evidence gathered since the last take, as JSON-ready lists; the recorder starts afresh."""
        taken: dict[str, list[float] | list[int]] = {
            "latencies_ms": self.latencies_ms.tolist(),
            "failed": self.failed.tolist(),
            "scores": self.scores.tolist(),
            "decisions": self.decisions.tolist(),
        }
        self.latencies_ms, self.failed = array("d"), array("b")
        self.scores, self.decisions = array("d"), array("b")
        return taken


@dataclass
class PairRecorder:
    """Shadow pairs: the champion's and the challenger's rows for the same request, whichever answered first."""

    pending: dict[str, tuple[str, list[float], list[int]]] = field(default_factory=dict)
    champion_scores: array[float] = field(default_factory=lambda: array("d"))
    challenger_scores: array[float] = field(default_factory=lambda: array("d"))
    champion_decisions: array[int] = field(default_factory=lambda: array("b"))
    challenger_decisions: array[int] = field(default_factory=lambda: array("b"))

    def add(self, request_id: str, arm: str, scores: list[float], codes: list[int]) -> None:
        other = self.pending.pop(request_id, None)
        if other is None:
            if len(self.pending) >= PENDING_PAIRS_MAX:  # the oldest half never found its other half
                for key in list(self.pending)[: PENDING_PAIRS_MAX // 2]:
                    del self.pending[key]
            self.pending[request_id] = (arm, scores, codes)
            return
        other_arm, other_scores, other_codes = other
        if other_arm == arm or len(other_scores) != len(scores):
            return
        champion = (scores, codes) if arm == CHAMPION else (other_scores, other_codes)
        challenger = (other_scores, other_codes) if arm == CHAMPION else (scores, codes)
        self.champion_scores.extend(champion[0])
        self.champion_decisions.extend(champion[1])
        self.challenger_scores.extend(challenger[0])
        self.challenger_decisions.extend(challenger[1])

    def forget(self, request_id: str) -> None:
        self.pending.pop(request_id, None)

    def take(self) -> dict[str, list[float] | list[int]]:
        taken: dict[str, list[float] | list[int]] = {
            "champion_scores": self.champion_scores.tolist(),
            "challenger_scores": self.challenger_scores.tolist(),
            "champion_decisions": self.champion_decisions.tolist(),
            "challenger_decisions": self.challenger_decisions.tolist(),
        }
        self.champion_scores, self.challenger_scores = array("d"), array("d")
        self.champion_decisions, self.challenger_decisions = array("b"), array("b")
        return taken


def read_rows(body: bytes) -> tuple[list[float], list[int], str | None]:
    """Scores, decision codes and model version of every row of a V1 or V2 answer.

    Raises:
        ValueError, KeyError, TypeError: not a fraud predictor's answer.
    """
    data = orjson.loads(body)
    predictions = data.get("predictions")
    if predictions is not None:
        scores = [float(p["fraud_probability"]) for p in predictions]
        codes = [DECISION_CODE[p["decision"]] for p in predictions]
        version = predictions[0].get("model_version") if predictions else None
        return scores, codes, None if version is None else str(version)
    outputs = {out["name"]: out["data"] for out in data["outputs"]}
    scores = [float(v) for v in outputs["fraud_probability"]]
    codes = [DECISION_CODE[d] for d in outputs["decision"]]
    version = data.get("model_version")
    return scores, codes, None if version is None else str(version)


def first_account(data: Any) -> str | None:
    """``nameOrig`` of a request's first transaction (V1 instances or V2 inputs), if readable."""
    if not isinstance(data, dict):
        return None
    instances = data.get("instances")
    if isinstance(instances, list):
        first = instances[0] if instances else None
        value = first.get("nameOrig") if isinstance(first, dict) else None
        return value if isinstance(value, str) else None
    inputs = data.get("inputs")
    if isinstance(inputs, list):
        for item in inputs:
            if isinstance(item, dict) and item.get("name") == "nameOrig":
                values = item.get("data")
                if isinstance(values, list) and values and isinstance(values[0], str):
                    return values[0]
                return None
    return None


# --------------------------------------------------------------------------------------------- the app


class Splitter:
    """The splitter as a raw ASGI application (uvicorn runs it; no framework on the request path)."""

    def __init__(
        self,
        route: Route,
        *,
        route_path: Path | None = None,
        model_name: str = "fraud-detector",
        collector_url: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.model_name = model_name
        self.route_path = route_path
        self.timeout_s = timeout_s
        self.collector_url = collector_url
        self.v1_path = f"/v1/models/{model_name}:predict"
        self.v2_path = f"/v2/models/{model_name}/infer"
        self.recorders = {arm: ArmRecorder() for arm in ARMS}
        self.pairs = PairRecorder()
        self.window_start = time.time()
        self.shadow_in_flight = 0
        self.shadow_skipped = 0
        self.sink: EventSink | None = None
        self._upstreams: dict[str, Upstream] = {}
        self._background: set[asyncio.Task[None]] = set()
        self.route = route
        self._threshold = route.threshold

    # --- routing -------------------------------------------------------------------------------------------
    def upstream(self, url: str) -> Upstream:
        found = self._upstreams.get(url)
        if found is None:
            found = self._upstreams[url] = Upstream(url, timeout_s=self.timeout_s)
        return found

    def set_route(self, route: Route) -> None:
        """Switch routing at once (the file first, so a restart keeps it); the evidence starts afresh."""
        if self.route_path is not None:
            write_route(self.route_path, route)
        self.route = route
        self._threshold = route.threshold
        self.take_window()
        live = {route.champion.url} | ({route.challenger.url} if route.challenger else set())
        for url in list(self._upstreams):
            if url not in live:
                self._upstreams.pop(url).close()
        log.info("route: %s", route.to_json())

    def choose(self, account: str | None) -> tuple[str, Target]:
        route = self.route
        if (
            route.challenger is not None
            and self._threshold > 0
            and account is not None
            and bucket(account, route.salt) < self._threshold
        ):
            return CHALLENGER, route.challenger
        return CHAMPION, route.champion

    # --- evidence ------------------------------------------------------------------------------------------
    def take_window(self) -> dict[str, Any]:
        """Everything recorded since the last take, with the route it was recorded under."""
        now = time.time()
        window = {
            "start": self.window_start,
            "end": now,
            "weight": self.route.weight,
            "shadow": self.route.shadow,
            "champion_version": self.route.champion.version,
            "challenger_version": None if self.route.challenger is None else self.route.challenger.version,
            "champion": self.recorders[CHAMPION].take(),
            "challenger": self.recorders[CHALLENGER].take(),
            "pairs": self.pairs.take(),
            "shadow_skipped": self.shadow_skipped,
        }
        self.window_start = now
        return window

    def record(self, arm: str, request_id: str, reply: Reply | None, latency_ms: float, *, paired: bool) -> None:
        recorder = self.recorders[arm]
        if reply is None or reply.status >= 500:
            recorder.failure(latency_ms)
            if paired:
                self.pairs.forget(request_id)
            return
        if reply.status != 200:
            recorder.rejected_total += 1
            if paired:
                self.pairs.forget(request_id)
            return
        try:
            scores, codes, _ = read_rows(reply.body)
        except (ValueError, KeyError, TypeError, IndexError):
            recorder.failure(latency_ms)  # a 200 that is not an answer is the arm's failure
            return
        recorder.answer(latency_ms, scores, codes)
        if paired:
            self.pairs.add(request_id, arm, scores, codes)

    # --- ASGI ----------------------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind != "http":
            return
        path: str = scope["path"]
        method: str = scope["method"]
        body = await _read_body(receive)
        if method == "POST" and path in (self.v1_path, self.v2_path):
            await self._infer(scope, body, send)
        elif path.startswith("/canary/"):
            await self._admin(method, path, body, send)
        elif path == "/metrics":
            await _respond(send, 200, self.metrics_text().encode(), b"text/plain; version=0.0.4")
        elif path == "/v2/health/live":
            await _respond(send, 200, b'{"live":true}')
        else:
            await self._passthrough(scope, body, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.collector_url:
                    self.sink = EventSink(self.collector_url, self.model_name)
                    self.sink.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.sink is not None:
                    await self.sink.drain(5.0)
                for upstream in self._upstreams.values():
                    upstream.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _infer(self, scope: Scope, body: bytes, send: Send) -> None:
        request_id, content_type, data = _request_meta(scope, body)
        arm, target = self.choose(first_account(data))
        path = scope["path"].encode()
        headers = [(b"content-type", content_type), (b"x-request-id", request_id.encode())]
        upstream = self.upstream(target.url)
        request = upstream.request_bytes(b"POST", path, body, headers)
        route = self.route
        shadow = route.shadow and arm == CHAMPION and route.challenger is not None
        if shadow and route.challenger is not None:
            if self.shadow_in_flight < SHADOW_MAX_IN_FLIGHT:
                self._spawn(self._shadow(route.challenger, path, body, headers, request_id))
            else:
                self.shadow_skipped += 1
                shadow = False
        started = time.perf_counter()
        reply: Reply | None
        try:
            reply = await upstream.send(request)
        except UpstreamError as exc:
            reply = None
            error = orjson.dumps({"error": f"{arm} predictor unavailable: {exc}"})
        latency_ms = (time.perf_counter() - started) * 1000.0
        if reply is None:
            await _respond(send, 502, error, extra=[(b"x-request-id", request_id.encode()), (ARM_HEADER, arm.encode())])
        else:
            await _respond(
                send,
                reply.status,
                reply.body,
                reply.content_type,
                extra=[(b"x-request-id", request_id.encode()), (ARM_HEADER, arm.encode())],
            )
        # After the answer has gone out: bookkeeping never delays it.
        self.record(arm, request_id, reply, latency_ms, paired=shadow)
        if self.sink is not None:
            self.sink.emit(request_id, "request", arm, body)
            if reply is not None and reply.status == 200:
                self.sink.emit(request_id, "response", arm, reply.body)

    async def _shadow(
        self, target: Target, path: bytes, body: bytes, headers: list[tuple[bytes, bytes]], request_id: str
    ) -> None:
        self.shadow_in_flight += 1
        upstream = self.upstream(target.url)
        started = time.perf_counter()
        reply: Reply | None
        try:
            reply = await upstream.send(upstream.request_bytes(b"POST", path, body, headers))
        except UpstreamError:
            reply = None
        finally:
            self.shadow_in_flight -= 1
        self.record(CHALLENGER, request_id, reply, (time.perf_counter() - started) * 1000.0, paired=True)
        if self.sink is not None:
            event_id = request_id + SHADOW_ID_SUFFIX
            self.sink.emit(event_id, "request", CHALLENGER, body)
            if reply is not None and reply.status == 200:
                self.sink.emit(event_id, "response", CHALLENGER, reply.body)

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _passthrough(self, scope: Scope, body: bytes, send: Send) -> None:
        """Health, readiness and metadata: the champion's own answer."""
        path = scope["path"] + (("?" + scope["query_string"].decode()) if scope.get("query_string") else "")
        upstream = self.upstream(self.route.champion.url)
        headers = [(b"content-type", b"application/json")] if body else []
        try:
            reply = await upstream.send(upstream.request_bytes(scope["method"].encode(), path.encode(), body, headers))
        except UpstreamError as exc:
            await _respond(send, 503, orjson.dumps({"error": f"champion predictor unavailable: {exc}"}))
            return
        await _respond(send, reply.status, reply.body, reply.content_type)

    async def _admin(self, method: str, path: str, body: bytes, send: Send) -> None:
        if path == "/canary/route" and method == "GET":
            await _respond(send, 200, orjson.dumps(self.route.to_json()))
        elif path == "/canary/route" and method == "PUT":
            try:
                route = Route.from_json(orjson.loads(body))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                await _respond(send, 400, orjson.dumps({"error": f"invalid route: {exc}"}))
                return
            self.set_route(route)
            await _respond(send, 200, orjson.dumps(route.to_json()))
        elif path == "/canary/window" and method == "POST":
            await _respond(send, 200, orjson.dumps(self.take_window()))
        elif path == "/canary/stats" and method == "GET":
            await _respond(send, 200, orjson.dumps(self.stats()))
        else:
            await _respond(send, 404, orjson.dumps({"error": f"no admin route {method} {path}"}))

    # --- reporting -----------------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"route": self.route.to_json(), "shadow_skipped": self.shadow_skipped}
        for arm, rec in self.recorders.items():
            out[arm] = {
                "requests": rec.requests_total,
                "errors": rec.errors_total,
                "rejected": rec.rejected_total,
                "rows": rec.rows_total,
                "decisions": dict(zip(DECISION_CODE, rec.decisions_total, strict=True)),
            }
        if self.sink is not None:
            out["events"] = {"sent": self.sink.sent, "failed": self.sink.failed, "dropped": self.sink.dropped}
        return out

    def metrics_text(self) -> str:
        route = self.route
        lines = [
            "# HELP canary_weight_percent Share of requests routed to the challenger.",
            "# TYPE canary_weight_percent gauge",
            f"canary_weight_percent {route.weight}",
            "# HELP canary_shadow 1 while the challenger scores copies of the champion's traffic.",
            "# TYPE canary_shadow gauge",
            f"canary_shadow {int(route.shadow)}",
            "# TYPE canary_requests_total counter",
            "# TYPE canary_errors_total counter",
            "# TYPE canary_rejected_total counter",
            "# TYPE canary_decisions_total counter",
            "# TYPE canary_latency_ms_sum counter",
        ]
        for arm, rec in self.recorders.items():
            version = route.champion.version if arm == CHAMPION else (route.challenger or route.champion).version
            labels = f'arm="{arm}",model_version="{version}"'
            lines.append(f"canary_requests_total{{{labels}}} {rec.requests_total}")
            lines.append(f"canary_errors_total{{{labels}}} {rec.errors_total}")
            lines.append(f"canary_rejected_total{{{labels}}} {rec.rejected_total}")
            lines.append(f"canary_latency_ms_sum{{{labels}}} {rec.latency_sum_ms:.3f}")
            for name, count in zip(DECISION_CODE, rec.decisions_total, strict=True):
                lines.append(f'canary_decisions_total{{{labels},decision="{name}"}} {count}')
        lines.append("# TYPE canary_shadow_skipped_total counter")
        lines.append(f"canary_shadow_skipped_total {self.shadow_skipped}")
        if self.sink is not None:
            lines.append("# TYPE canary_events_dropped_total counter")
            lines.append(f"canary_events_dropped_total {self.sink.dropped}")
            lines.append("# TYPE canary_events_failed_total counter")
            lines.append(f"canary_events_failed_total {self.sink.failed}")
        return "\n".join(lines) + "\n"


def _request_meta(scope: Scope, body: bytes) -> tuple[str, bytes, Any]:
    """(request id, content type, decoded body or None): the id from ``x-request-id``, the body's ``id``, or new."""
    request_id: str | None = None
    content_type = b"application/json"
    for key, value in scope["headers"]:
        if key == b"x-request-id":
            request_id = value.decode("latin-1")
        elif key == b"content-type":
            content_type = value
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    if request_id is None:
        given = data.get("id") if isinstance(data, dict) else None
        request_id = given if isinstance(given, str) and given else uuid.uuid4().hex
    return request_id, content_type, data


async def _read_body(receive: Receive) -> bytes:
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return body
    parts = [body]
    while message.get("more_body", False):
        message = await receive()
        parts.append(message.get("body", b""))
    return b"".join(parts)


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes = b"application/json",
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if extra:
        headers += extra
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def with_route(route: Route, **changes: Any) -> Route:
    """A copy of a route with some fields changed (validated again)."""
    return replace(route, **changes)
