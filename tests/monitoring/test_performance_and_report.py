"""Measured performance with intervals that cover the truth, the CBPE estimate on calibrated scores, and the
daily report's numbers and page."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pandas as pd

from monitoring import daily_report, performance
from monitoring.drift import detect
from tests.monitoring.conftest import World, sample


def test_clopper_pearson_covers_the_rate_at_the_stated_level() -> None:
    rng = np.random.default_rng(0)
    intervals = [performance.clopper_pearson(int(rng.binomial(400, 0.03)), 400) for _ in range(500)]
    covered = sum(i.low is not None and i.high is not None and i.low <= 0.03 <= i.high for i in intervals)
    assert covered >= 0.95 * 500 - 10
    assert performance.clopper_pearson(0, 0).value is None


def test_measured_and_estimated_performance_agree_on_a_healthy_month(world: World) -> None:
    month = world.month(31)
    th = world.reference.thresholds
    measured = performance.measured(
        month["score"], month["isFraud"], month["amount"], th.block, th.review_cost, days=3.0
    )
    calibration = performance.Calibration.from_reference(world.reference)
    estimated = performance.estimated(month["score"], month["amount"], th.block, th.review_cost, calibration, days=3.0)
    assert measured.kind == "measured" and estimated.kind == "estimated" and "ESTIMATE" in estimated.note
    assert measured.precision.low is not None and measured.precision.high is not None
    assert measured.precision.low <= measured.precision.value <= measured.precision.high  # type: ignore[operator]
    assert measured.average_precision.value is not None and measured.average_precision.low is not None
    # no concept drift here: the estimate lands near the measurement (frauds are few, so loosely)
    assert estimated.recall.value is not None and measured.recall.value is not None
    assert abs(estimated.recall.value - measured.recall.value) < 0.25
    assert abs(estimated.frauds - measured.frauds) < 0.5 * measured.frauds + 10


def test_daily_report_counts_outcomes_reasons_and_latency(world: World, tmp_path: Path) -> None:
    log = sample(world.month(32), 20_000, 0)
    rng = np.random.default_rng(1)
    log["received_at"] = pd.Timestamp("2026-12-06", tz="UTC") + pd.to_timedelta(rng.integers(0, 86_400, len(log)), "s")
    log["latency_ms"] = rng.gamma(2.0, 1.5, len(log))
    log["reasons"] = np.where(
        log["decision"] != "allow",
        json.dumps([{"reason": "amount 8.2x the usual", "feature": "amount_vs_type_median", "contribution": 1.2}]),
        "[]",
    )
    labels = log["isFraud"].astype(float).where(rng.random(len(log)) < 0.8)  # a fifth still pending
    result = detect(log, world.reference)
    report = daily_report.build(
        date(2026, 12, 6), log, labels=labels, pending_labels=int(labels.isna().sum()), drift=result
    )
    data = report.data
    assert data["volumes"]["rows"] == 20_000 and sum(data["decisions"].values()) == 20_000
    assert sum(sum(v) for v in data["volumes"]["by_hour"].values()) == 20_000
    outcomes = data["outcomes"]
    known = labels.notna().to_numpy()
    frauds = known & (log["isFraud"].to_numpy() == 1)
    assert outcomes["frauds"] == int(frauds.sum())
    assert outcomes["caught"] + outcomes["reviewed"] + outcomes["missed"] == outcomes["frauds"]
    assert outcomes["pending"] == int((~known).sum())
    flagged = int((log["decision"] != "allow").sum())
    assert data["top_reasons"] == [{"reason": "amount_vs_type_median", "count": flagged}]
    assert 0 < data["latency_ms"]["p50"] < data["latency_ms"]["p99"]
    assert data["drift"]["drift"] == result.drift and data["drift"]["drifted"] == [c.name for c in result.drifted]
    html, numbers = daily_report.write(report, tmp_path)
    page = html.read_text()
    for heading in ("Volumes and decisions", "Fraud caught and missed", "Top reasons", "Drift", "Latency"):
        assert heading in page
    # the two plots, inline SVG drawn from the JSON's numbers: each hour's bar holds that hour's rows
    svgs = re.findall(r"<svg .*?</svg>", page, re.S)
    assert [re.search(r"<title>(.*?)</title>", s).group(1) for s in svgs] == [  # type: ignore[union-attr]
        "Volume by hour and decision",
        "Score distribution",
    ]
    for svg in svgs:
        ElementTree.fromstring(svg)  # well-formed
    by_hour = data["volumes"]["by_hour"]
    assert f"<title>7 allow: {by_hour['allow'][7]:,}</title>" in svgs[0]
    assert sum(data["score_histogram"]["counts"]) == 20_000
    assert json.loads(numbers.read_text())["day"] == "2026-12-06"
