"""The collector's Prometheus metrics (``GET /metrics``), on a registry of its own.

Counters are resolved to their label children once, so the hot path pays one increment, not a label lookup.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest

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
        disable_created_metrics()  # type: ignore[no-untyped-call]  # the *_created series double the output and nobody alerts on them
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        received = Counter("collector_events_received", "CloudEvents received, by type.", ["type"], registry=r)
        acked = Counter(
            "collector_events_acked", "CloudEvents acknowledged (durable in the write-ahead log).", ["type"], registry=r
        )
        duplicates = Counter(
            "collector_events_duplicate",
            "Redelivered CloudEvents dropped (same ce-id and ce-type).",
            ["type"],
            registry=r,
        )
        bad = Counter("collector_events_bad", "Refused events (4xx), by reason.", ["reason"], registry=r)
        self.received = {t: received.labels(t) for t in (*TYPES, "unknown")}
        self.acked = {t: acked.labels(t) for t in TYPES}
        self.duplicates = {t: duplicates.labels(t) for t in TYPES}
        self.bad = {reason: bad.labels(reason) for reason in BAD_REASONS}
        self.unavailable = Counter(
            "collector_events_unavailable",
            "Events answered 503 (write-ahead log failed or backlog full); the sender must resend.",
            registry=r,
        )
        unmatched = Counter(
            "collector_unmatched",
            "Events written without their other half after the wait (half = request or response).",
            ["half"],
            registry=r,
        )
        self.unmatched = {half: unmatched.labels(half) for half in TYPES}
        self.rows_written = Counter("collector_rows_written", "Inference-log rows written to the store.", registry=r)
        self.labels_received = Counter("collector_labels_received", "Labels accepted on /v1/labels.", registry=r)
        self.labels_unknown = Counter(
            "collector_labels_unknown", "Accepted labels whose request id the collector has not seen.", registry=r
        )
        self.flushes = Counter("collector_flushes", "Parquet flushes committed.", registry=r)
        self.flush_errors = Counter("collector_flush_errors", "Failed flush attempts (retried).", registry=r)
        self.flush_seconds = Histogram(
            "collector_flush_seconds",
            "Time to build, upload and commit one flush.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.flush_lag = Gauge(
            "collector_flush_lag_seconds", "Age of the oldest acknowledged event not yet in the store.", registry=r
        )
        self.wal_bytes = Gauge("collector_wal_bytes", "Bytes in live write-ahead log segments.", registry=r)
        self.pending_halves = Gauge(
            "collector_pending_halves", "Requests or responses waiting for their other half.", registry=r
        )
        self.wal_groups = Counter(
            "collector_wal_commits", "Group commits (one fdatasync each) of the write-ahead log.", registry=r
        )

    def bind(self, flush_lag: Callable[[], float], wal_bytes: Callable[[], float], halves: Callable[[], float]) -> None:
        """Gauges computed when scraped."""
        self.flush_lag.set_function(flush_lag)
        self.wal_bytes.set_function(wal_bytes)
        self.pending_halves.set_function(halves)

    def render(self) -> bytes:
        return generate_latest(self.registry)
