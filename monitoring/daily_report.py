"""The fraud team's daily report: what the model decided, what it caught and missed, why, and whether it drifted.

Built from one day of the inference log (optionally joined to matured labels), the day's drift verdict and
performance; written as JSON (the numbers, stable: sorted keys, no timestamps but ``generated_at``) and as one
self-contained HTML file (jinja2, plots embedded as PNG), then stored in the object store and on an MLflow run.
"""

from __future__ import annotations

import base64
import io
import json
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any, Final

import jinja2
import numpy as np
import pandas as pd

from fraud.schema import TRANSACTION_TYPES
from monitoring.drift import DriftResult
from monitoring.performance import Performance

DECISION_ORDER: Final = ("allow", "review", "block")
TOP_REASONS: Final = 10
REPORT_EXPERIMENT: Final = "fraud-monitoring"
OPTIONAL_SECTIONS: Final = ("outcomes", "performance", "top_reasons", "latency_ms", "drift")
"""Sections present only when their data exists (labels, reasons, latency, a reference)."""


@dataclass(frozen=True)
class DailyReport:
    day: date
    data: dict[str, Any]
    html: str

    def json(self) -> str:
        return json.dumps(self.data, indent=2, sort_keys=True, default=_plain)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"not JSON: {type(value).__name__}")


def _reason_names(values: pd.Series) -> Counter[str]:
    """Count reasons by feature: each row's ``reasons`` is a JSON list of the predictor's reason objects."""
    counts: Counter[str] = Counter()
    for text in values.dropna().to_numpy():
        try:
            items = json.loads(text) if isinstance(text, str) else text
        except json.JSONDecodeError:
            continue
        if not isinstance(items, list):
            continue
        for item in items:
            # the predictor logs {"reason": sentence, "feature": name, ...}; the sentence carries the values
            name = (item.get("feature") or item.get("reason")) if isinstance(item, dict) else item
            if name is not None:
                counts[str(name)] += 1
    return counts


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def summarise(
    log: pd.DataFrame,
    *,
    labels: pd.Series | None = None,
    pending_labels: int = 0,
    drift: DriftResult | None = None,
    performance: Performance | None = None,
) -> dict[str, Any]:
    """The day's numbers.

    Args:
        log: the day's inference-log rows (``decision``, ``type``, ``amount``, ``score``; ``received_at``,
            ``reasons``, ``latency_ms``, ``model_version``, ``arm`` when present).
        labels: final labels aligned with ``log`` (NaN where not final yet); None when no label is known.
        pending_labels: rows still waiting for a final label.
        drift: the day's drift verdict.
        performance: measured or estimated performance.
    """
    decisions = log["decision"].astype(str)
    counts = decisions.value_counts()
    data: dict[str, Any] = {
        "volumes": {"rows": len(log)},
        "decisions": {name: int(counts.get(name, 0)) for name in DECISION_ORDER},
        "pending_labels": int(pending_labels),
    }
    by_type = pd.crosstab(log["type"].astype(str), decisions)
    rows_by_type: dict[str, dict[str, int]] = {
        str(kind): {str(k): int(v) for k, v in row.items()} for kind, row in by_type.to_dict("index").items()
    }
    data["decisions_by_type"] = {
        kind: {name: rows_by_type[kind].get(name, 0) for name in DECISION_ORDER}
        for kind in TRANSACTION_TYPES
        if kind in rows_by_type
    }
    if "received_at" in log.columns and len(log):
        hours = pd.to_datetime(log["received_at"], utc=True).dt.hour
        table = pd.crosstab(hours, decisions).reindex(range(24), fill_value=0)
        data["volumes"]["by_hour"] = {
            name: [int(v) for v in table.get(name, pd.Series(0, index=range(24)))] for name in DECISION_ORDER
        }
    for column in ("model_version", "arm"):
        if column in log.columns:
            data["volumes"][f"by_{column}"] = {
                str(k): int(v) for k, v in log[column].astype(str).value_counts().sort_index().items()
            }
    if labels is not None:
        y = pd.to_numeric(labels, errors="coerce").to_numpy(dtype=np.float64)
        known = np.isfinite(y)
        fraud = known & (y > 0)
        legit = known & (y == 0)
        amount = log["amount"].to_numpy(dtype=np.float64)
        d = decisions.to_numpy()
        data["outcomes"] = {
            "labelled": int(known.sum()),
            "frauds": int(fraud.sum()),
            "caught": int(np.sum(fraud & (d == "block"))),
            "caught_amount": float(amount[fraud & (d == "block")].sum()),
            "reviewed": int(np.sum(fraud & (d == "review"))),
            "reviewed_amount": float(amount[fraud & (d == "review")].sum()),
            "missed": int(np.sum(fraud & (d == "allow"))),
            "missed_amount": float(amount[fraud & (d == "allow")].sum()),
            "false_alerts": int(np.sum(legit & (d == "block"))),
            "pending": int(pending_labels),
        }
    if "reasons" in log.columns:
        flagged = log.loc[decisions.isin(["review", "block"]).to_numpy(), "reasons"]
        data["top_reasons"] = [
            {"reason": name, "count": count} for name, count in _reason_names(flagged).most_common(TOP_REASONS)
        ]
    if "latency_ms" in log.columns:
        latency = pd.to_numeric(log["latency_ms"], errors="coerce").dropna().to_numpy(dtype=np.float64)
        if latency.size:
            p50, p95, p99 = np.percentile(latency, [50, 95, 99])
            data["latency_ms"] = {
                "p50": float(p50),
                "p95": float(p95),
                "p99": float(p99),
                "max": float(latency.max()),
                "rows": int(latency.size),
            }
    if drift is not None:
        data["drift"] = drift.to_dict()
    if performance is not None:
        data["performance"] = performance.to_dict()
    return data


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    return base64.b64encode(buffer.getvalue()).decode()


def _figures(log: pd.DataFrame, data: dict[str, Any]) -> dict[str, str]:
    from matplotlib.figure import Figure

    figures: dict[str, str] = {}
    by_hour = data["volumes"].get("by_hour")
    if by_hour:
        figure = Figure(figsize=(9, 3))
        ax = figure.subplots()
        bottom = np.zeros(24)
        for name, colour in zip(DECISION_ORDER, ("#9bb7d4", "#f0b429", "#d64545"), strict=True):
            values = np.asarray(by_hour[name], dtype=np.float64)
            ax.bar(range(24), values, bottom=bottom, color=colour, label=name)
            bottom += values
        ax.set_xlabel("hour received (UTC)")
        ax.set_ylabel("transactions")
        ax.legend(loc="upper left", frameon=False)
        ax.set_title("Volume by hour and decision")
        figures["volume"] = _png(figure)
    if "score" in log.columns and len(log):
        figure = Figure(figsize=(9, 3))
        ax = figure.subplots()
        scores = log["score"].to_numpy(dtype=np.float64)
        ax.hist(scores[np.isfinite(scores)], bins=100, color="#4a6fa5", log=True)
        ax.set_xlabel("fraud probability")
        ax.set_ylabel("transactions (log scale)")
        ax.set_title("Score distribution")
        figures["scores"] = _png(figure)
    return figures


@cache
def _template() -> jinja2.Template:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("monitoring", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return environment.get_template("daily_report.html.j2")


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if not np.isfinite(value):
            return "–"
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def build(
    day: date,
    log: pd.DataFrame,
    *,
    labels: pd.Series | None = None,
    pending_labels: int = 0,
    drift: DriftResult | None = None,
    performance: Performance | None = None,
    now: datetime | None = None,
) -> DailyReport:
    """Summarise a day and render it."""
    data = summarise(log, labels=labels, pending_labels=pending_labels, drift=drift, performance=performance)
    data["day"] = day.isoformat()
    generated_at = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    data["generated_at"] = generated_at
    versions = sorted(data["volumes"].get("by_model_version", {}))
    html = _template().render(
        title=f"Fraud detection daily report · {day.isoformat()}",
        generated_at=generated_at,
        versions=versions,
        data={**dict.fromkeys(OPTIONAL_SECTIONS), **json.loads(json.dumps(data, default=_plain))},
        figures=_figures(log, data),
        fmt=_fmt,
    )
    return DailyReport(day, data, html)


def write(report: DailyReport, directory: Path) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.json`` under ``directory/day=YYYY-MM-DD/``."""
    folder = directory / f"day={report.day.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    html = folder / "report.html"
    data = folder / "report.json"
    html.write_text(report.html)
    data.write_text(report.json())
    return html, data
