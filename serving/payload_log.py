"""The payload logger: each inference's request and response as KServe-style CloudEvents, sent in the background.

KServe's agent sidecar does this on a cluster (``spec.predictor.logger``); locally the splitter and the predictor
itself play that part, so direct predictor traffic and canary traffic land in the same collector with the same
headers. Binary-mode CloudEvents: ``ce-id`` is the request id (shared by the request and its response),
``ce-type`` ``org.kubeflow.serving.inference.request`` / ``.response``, plus ``ce-source``,
``ce-inferenceservicename``, ``ce-namespace``, ``ce-component`` and ``ce-endpoint``; the body is the V1 or V2 JSON.

Logging never delays or fails an answer: `EventSink.emit` builds the request bytes and puts them on a bounded
queue without waiting, background workers send them, and when the collector is slow or gone the queue fills and
further events are dropped and counted (``dropped``), as are refused or failed deliveries (``failed``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Final

from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from serving.upstream import Upstream, UpstreamError

EVENT_QUEUE_MAX: Final = 20_000
EVENT_WORKERS: Final = 4
EVENT_TYPE_PREFIX: Final = b"org.kubeflow.serving.inference."


class EventSink:
    """CloudEvents (binary mode) to the collector, from a bounded queue drained by background workers.

    Workers start with the first event (or `start`), on the running event loop: the sink can be built before
    the server's loop exists.
    """

    def __init__(self, url: str, model_name: str, namespace: str = "local") -> None:
        self.upstream = Upstream(url, max_connections=EVENT_WORKERS, timeout_s=5.0)
        self.path = (url.split("/", 3)[3:] or [""])[0]
        self.path_bytes = ("/" + self.path).encode()
        self.model_name = model_name.encode()
        self.namespace = namespace.encode()
        self.queue: asyncio.Queue[bytes] | None = None
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self.workers: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self.queue = asyncio.Queue(EVENT_QUEUE_MAX)
        self.workers = [asyncio.create_task(self._work(self.queue)) for _ in range(EVENT_WORKERS)]

    def emit(self, request_id: str, kind: str, arm: str, body: bytes) -> None:
        """Queue one event whose source, component and endpoint are all ``arm`` (the splitter's arms)."""
        encoded = arm.encode()
        self.emit_event(request_id, kind, body, source=encoded, component=encoded, endpoint=encoded)

    def emit_event(
        self, request_id: str, kind: str, body: bytes, *, source: bytes, component: bytes, endpoint: bytes
    ) -> None:
        """Queue one event (``kind``: request or response); never waits (a full queue drops it, counted)."""
        if self.queue is None:
            self.start()
        assert self.queue is not None
        headers = [
            (b"ce-specversion", b"1.0"),
            (b"ce-id", request_id.encode()),
            (b"ce-type", EVENT_TYPE_PREFIX + kind.encode()),
            (b"ce-source", source),
            (b"ce-time", datetime.now(UTC).isoformat(timespec="milliseconds").encode()),
            (b"ce-inferenceservicename", self.model_name),
            (b"ce-namespace", self.namespace),
            (b"ce-component", component),
            (b"ce-endpoint", endpoint),
            (b"content-type", b"application/json"),
        ]
        try:
            self.queue.put_nowait(self.upstream.request_bytes(b"POST", self.path_bytes, body, headers))
        except asyncio.QueueFull:
            self.dropped += 1

    async def _work(self, queue: asyncio.Queue[bytes]) -> None:
        while True:
            request = await queue.get()
            try:
                reply = await self.upstream.send(request)
                if 200 <= reply.status < 300:
                    self.sent += 1
                else:
                    self.failed += 1
            except UpstreamError:
                self.failed += 1

    async def drain(self, timeout_s: float) -> None:
        """Give queued events up to ``timeout_s`` to go out (at shutdown)."""
        deadline = time.monotonic() + timeout_s
        while self.queue is not None and not self.queue.empty() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for worker in self.workers:
            worker.cancel()
        self.upstream.close()


PREDICTOR_COMPONENT: Final = b"predictor"
DEFAULT_ENDPOINT: Final = b"default"
"""KServe's ``ce-endpoint`` of an InferenceService's main (non-canary) predictor; the collector reads it as the
champion arm. A predictor served directly is not part of a rollout, so it is always this."""


class PredictorLogger:
    """The predictor's own payload logger: what KServe's agent would send for this predictor's traffic."""

    def __init__(self, url: str, model_name: str, source: str, namespace: str = "local") -> None:
        self.sink = EventSink(url, model_name, namespace)
        self.url = url
        self.source = source.encode()

    def log(self, request_id: str, request: bytes, status: int, response: bytes) -> None:
        """Queue the request's event, and the response's when it was an answer (200): never waits."""
        sink = self.sink
        sink.emit_event(
            request_id, "request", request, source=self.source, component=PREDICTOR_COMPONENT, endpoint=DEFAULT_ENDPOINT
        )
        if status == 200:
            sink.emit_event(
                request_id,
                "response",
                response,
                source=self.source,
                component=PREDICTOR_COMPONENT,
                endpoint=DEFAULT_ENDPOINT,
            )


class PayloadLogMetrics(Collector):
    """``fraud_payload_log_events_{sent,failed,dropped}_total`` on the predictor's ``/metrics``."""

    def __init__(self, sink: EventSink) -> None:
        self.sink = sink

    def collect(self) -> Iterator[Metric]:
        sink = self.sink
        for name, value, text in (
            ("sent", sink.sent, "Payload-log CloudEvents the collector accepted."),
            ("failed", sink.failed, "Payload-log CloudEvents the collector refused or that could not be delivered."),
            ("dropped", sink.dropped, "Payload-log CloudEvents dropped unsent because the queue was full."),
        ):
            yield CounterMetricFamily(f"fraud_payload_log_events_{name}", text, value=value)


def register_metrics(sink: EventSink) -> None:
    """Export the sink's counters on the process's default registry (what KServe's ``/metrics`` serves)."""
    REGISTRY.register(PayloadLogMetrics(sink))
