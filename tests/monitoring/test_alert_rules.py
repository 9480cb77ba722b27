"""The shipped alert rules parse, are a PrometheusRule, and only name metrics the drift job really exports."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import yaml
from prometheus_client import generate_latest

from monitoring import metrics
from monitoring.drift import detect
from tests.monitoring.conftest import World, sample

RULES = Path(__file__).resolve().parents[2] / "monitoring" / "rules" / "drift-alerts.yaml"


def test_rules_name_only_exported_metrics_and_labels(world: World) -> None:
    document = yaml.safe_load(RULES.read_text())
    assert document["kind"] == "PrometheusRule" and document["apiVersion"] == "monitoring.coreos.com/v1"
    rules = [rule for group in document["spec"]["groups"] for rule in group["rules"]]
    assert {r["alert"] for r in rules} >= {"FraudModelDrift", "FraudBlockRateShift", "FraudScoreTailGrowing"}
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
    for rule in rules:
        used = set(re.findall(r"\bfraud_[a-z0-9_]+\b", rule["expr"]))
        assert used, rule["alert"]
        assert used <= names, (rule["alert"], used - names)
        for column in re.findall(r'column=~"([^"]+)"', rule["expr"]):
            for name in column.split("|"):
                assert f'column="{name}"' in exported, (rule["alert"], name)
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}
    assert np.isfinite(float(re.findall(r"^fraud_drift_window_rows\S* (\S+)$", exported, re.MULTILINE)[0]))
