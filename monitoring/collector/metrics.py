"""The collector's Prometheus metrics (``GET /metrics``), on a registry of its own.

Per-event counters are plain integers turned into metric families only when scraped: a prometheus_client
``Counter.inc()`` takes a lock and a few checks (~2 µs), and the hot path counts every event twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Final

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

BAD_REASONS: Final = (
    "not_cloudevent",
    "unknown_type",
    "missing_id",
    "bad_header",
    "unparseable_body",
    "oversized",
    "bad_labels",
    "not_found",
)
TYPES: Final = ("request", "response")


class CollectorMetrics:
    def __init__(self) -> None:
        self.received = dict.fromkeys((*TYPES, "unknown"), 0)
        self.acked = dict.fromkeys(TYPES, 0)
        self.duplicates = dict.fromkeys(TYPES, 0)
        self.bad = dict.fromkeys(BAD_REASONS, 0)
        self.unmatched = dict.fromkeys(TYPES, 0)
        self.unavailable = 0
        self.rows_written = 0
        self.labels_received = 0
        self.labels_unknown = 0
        self.flushes = 0
        self.flush_errors = 0
        self.wal_groups = 0
        self._gauges: dict[str, tuple[str, Callable[[], float]]] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)  # duck-typed: collect() is all a registry needs
        self.flush_seconds = Histogram(
            "collector_flush_seconds",
            "Time to build, upload and commit one flush.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )

    def bind(self, flush_lag: Callable[[], float], wal_bytes: Callable[[], float], halves: Callable[[], float]) -> None:
        """Gauges computed when scraped."""
        self._gauges = {
            "collector_flush_lag_seconds": ("Age of the oldest acknowledged event not yet in the store.", flush_lag),
            "collector_wal_bytes": ("Bytes in live write-ahead log segments.", wal_bytes),
            "collector_pending_halves": ("Requests or responses waiting for their other half.", halves),
        }

    def collect(self) -> Iterator[Metric]:
        """What the registry asks for at scrape time."""
        yield _labelled("collector_events_received", "CloudEvents received, by type.", "type", self.received)
        yield _labelled(
            "collector_events_acked", "CloudEvents acknowledged (durable in the write-ahead log).", "type", self.acked
        )
        yield _labelled(
            "collector_events_duplicate",
            "Redelivered CloudEvents dropped (same ce-id and ce-type).",
            "type",
            self.duplicates,
        )
        yield _labelled("collector_events_bad", "Refused events (4xx), by reason.", "reason", self.bad)
        yield _labelled(
            "collector_unmatched",
            "Events written without their other half after the wait (half = request or response).",
            "half",
            self.unmatched,
        )
        for name, help_text, value in (
            (
                "collector_events_unavailable",
                "Events answered 503 (write-ahead log failed or backlog full); the sender must resend.",
                self.unavailable,
            ),
            ("collector_rows_written", "Inference-log rows written to the store.", self.rows_written),
            ("collector_labels_received", "Labels accepted on /v1/labels.", self.labels_received),
            (
                "collector_labels_unknown",
                "Accepted labels whose request id the collector has not seen.",
                self.labels_unknown,
            ),
            ("collector_flushes", "Parquet flushes committed.", self.flushes),
            ("collector_flush_errors", "Failed upload attempts (retried).", self.flush_errors),
            ("collector_wal_commits", "Write-ahead log group commits (one synchronous write each).", self.wal_groups),
        ):
            yield CounterMetricFamily(name, help_text, value=value)
        for name, (help_text, read) in self._gauges.items():
            yield GaugeMetricFamily(name, help_text, value=read())

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _labelled(name: str, help_text: str, label: str, values: dict[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, help_text, labels=[label])
    for key, value in values.items():
        family.add_metric([key], value)
    return family
