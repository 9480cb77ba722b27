"""The chart's alert rules (the platform's one rule set, `helm/fraud-platform/files/alert-rules.yaml`), rendered as a
release with a Pushgateway renders them, only name metrics and ``column`` values a real drift window exports."""

from __future__ import annotations

import re

import numpy as np
from prometheus_client import generate_latest

from monitoring import metrics
from monitoring.drift import detect
from tests.k8s.conftest import render
from tests.monitoring.conftest import World, sample

PROMETHEUS_RULE = "monitoring.coreos.com/v1/PrometheusRule"
PUSHED = {"monitoring": {"enabled": True, "drift": {"pushgatewayUrl": "http://pushgateway.monitoring.svc:9091"}}}


def test_drift_rules_name_only_what_a_drift_window_exports(world: World) -> None:
    (rule,) = render(PUSHED, "rules", api_versions=(PROMETHEUS_RULE,)).of_kind("PrometheusRule")
    assert rule["kind"] == "PrometheusRule" and rule["apiVersion"] == "monitoring.coreos.com/v1"
    rules = [r for group in rule["spec"]["groups"] for r in group["rules"]]
    drift_rules = [r for r in rules if re.search(r"\bfraud_", r["expr"])]
    assert {r["alert"] for r in drift_rules} == {
        "FraudModelDrift",
        "FraudBlockRateShift",
        "FraudScoreTailGrowing",
        "FraudInferenceLogLag",
    }
    window = sample(world.month(12), 2_000, 0)
    registry = metrics.registry_for(
        detect(window, world.reference),
        decision_rates={"block": 0.01},
        event_lag_seconds=3.0,
        pending_labels=10,
        alert_firing=False,
    )
    exported = generate_latest(registry).decode()
    names = set(re.findall(r"^(fraud_[a-z0-9_]+)", exported, re.MULTILINE))
    for alert in drift_rules:
        used = set(re.findall(r"\bfraud_[a-z0-9_]+\b", alert["expr"]))
        assert used <= names, (alert["alert"], used - names)
        for column in re.findall(r'column=~"([^"]+)"', alert["expr"]):
            for name in column.split("|"):
                assert f'column="{name}"' in exported, (alert["alert"], name)
        for label in re.findall(r"by \(([^)]*)\)", alert["expr"]):
            for name in label.split(","):
                assert f'{name.strip()}="' in exported, (alert["alert"], name)
    assert np.isfinite(float(re.findall(r"^fraud_drift_window_rows\S* (\S+)$", exported, re.MULTILINE)[0]))


def test_without_a_pushgateway_no_rule_names_a_drift_metric() -> None:
    values = {"monitoring": {"enabled": True}}
    (rule,) = render(values, "rules", api_versions=(PROMETHEUS_RULE,)).of_kind("PrometheusRule")
    exprs = [r["expr"] for group in rule["spec"]["groups"] for r in group["rules"]]
    assert exprs and not [e for e in exprs if "fraud_" in e]


def test_the_local_notifier_sends_the_chart_rules_drift_alert() -> None:
    """`fraudctl monitor drift` (no Prometheus) and a cluster's Prometheus page with the same alert."""
    from fraud.cli.monitor import DRIFT_ALERT

    (rule,) = render(PUSHED, "rules", api_versions=(PROMETHEUS_RULE,)).of_kind("PrometheusRule")
    alerts = {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}
    assert DRIFT_ALERT in alerts
    assert alerts[DRIFT_ALERT]["expr"] == "max(fraud_drift_alert_firing) == 1"  # the notifier's own verdict
    assert alerts[DRIFT_ALERT]["labels"]["severity"] == "warning"
