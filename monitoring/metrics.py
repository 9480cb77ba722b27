"""Prometheus metrics of a drift window: statistics per column and segment, decision rates, lag, pending labels.

A drift check is a batch job (a CronJob on a cluster, a command locally), so its metrics are written in the
Prometheus text format to a file (node-exporter's textfile collector, or a Pushgateway push of the same text)
and served by whatever scrapes the monitoring. The alert rules in ``helm/fraud-platform/files/alert-rules.yaml`` are
written against these names (tests/monitoring/test_alert_rules.py checks them against a real window).
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, generate_latest, push_to_gateway

from monitoring.drift import DriftResult


def registry_for(
    result: DriftResult,
    *,
    decision_rates: dict[str, float],
    event_lag_seconds: float | None = None,
    pending_labels: int | None = None,
    alert_firing: bool | None = None,
) -> CollectorRegistry:
    """One registry holding the window's gauges, labelled by reference version."""
    registry = CollectorRegistry()
    version = result.reference_version
    labels = ("column", "segment", "version")
    statistic = Gauge(
        "fraud_drift_statistic", "Drift effect per column (PSI or rate ratio).", labels, registry=registry
    )
    threshold = Gauge("fraud_drift_threshold", "Effect threshold per column.", labels, registry=registry)
    p_adjusted = Gauge("fraud_drift_p_adjusted", "Holm-adjusted p-value per column.", labels, registry=registry)
    drifted = Gauge("fraud_drift_detected", "1 when the column drifts.", labels, registry=registry)
    for column in result.columns:
        if not column.tested:
            continue
        key = (column.name.split("[")[0], column.segment or "all", version)
        statistic.labels(*key).set(column.statistic)
        threshold.labels(*key).set(column.threshold)
        p_adjusted.labels(*key).set(column.p_adjusted)
        drifted.labels(*key).set(1.0 if column.drift else 0.0)
    Gauge("fraud_drift_window", "1 when the window drifts (any column).", ("version",), registry=registry).labels(
        version
    ).set(1.0 if result.drift else 0.0)
    Gauge("fraud_drift_window_rows", "Rows in the drift window.", ("version",), registry=registry).labels(version).set(
        result.rows
    )
    rates = Gauge(
        "fraud_decision_rate",
        "Share of the window's transactions per decision.",
        ("decision", "version"),
        registry=registry,
    )
    for decision, rate in decision_rates.items():
        rates.labels(decision, version).set(rate)
    if event_lag_seconds is not None:
        Gauge(
            "fraud_event_lag_seconds",
            "Age of the newest logged prediction when the window was read.",
            registry=registry,
        ).set(event_lag_seconds)
    if pending_labels is not None:
        Gauge(
            "fraud_pending_labels", "Predictions of the window still waiting for a final label.", registry=registry
        ).set(pending_labels)
    if alert_firing is not None:
        Gauge(
            "fraud_drift_alert_firing", "1 while the local drift alert fires (k windows in a row).", registry=registry
        ).set(1.0 if alert_firing else 0.0)
    return registry


def write_textfile(registry: CollectorRegistry, path: Path) -> Path:
    """Write the registry atomically in the text exposition format."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_suffix(".tmp")
    temp.write_bytes(generate_latest(registry))
    temp.replace(path)
    return path


PUSH_JOB = "fraud-drift"
"""The Pushgateway job of the drift metrics (the chart's alert rules select it)."""


def push(registry: CollectorRegistry, gateway: str, *, timeout: float = 10.0) -> None:
    """Replace the drift job's group on a Pushgateway with this window's gauges (PUT: columns that stopped
    drifting or segments that vanished do not linger from an older window).

    Raises:
        OSError: the gateway cannot be reached or refuses the push (urllib's errors are OSErrors).
    """
    push_to_gateway(gateway, job=PUSH_JOB, registry=registry, timeout=timeout)
