"""The fraud team's daily report: what the model decided, what it caught and missed, why, and whether it drifted.

Built from one day of the inference log (optionally joined to matured labels), the day's drift verdict and
performance; written as JSON (the numbers, stable: sorted keys, no timestamps but ``generated_at``) and as one
self-contained HTML file (jinja2, plots inline as SVG drawn from the JSON's numbers), then stored in the object
store and on an MLflow run.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import jinja2
import numpy as np
import numpy.typing as npt
import pandas as pd

from fraud.schema import TRANSACTION_TYPES
from monitoring import report_plots

if TYPE_CHECKING:  # only their to_dict() is called: the report's readers need not import scipy for them
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
    """Count reasons by feature: each row's ``reasons`` is a JSON list of the predictor's reason objects.

    Rows repeat the same few texts, so each distinct text is parsed once and counted as often as it occurs."""
    present = values.dropna()
    try:
        distinct: list[tuple[Any, int]] = [(text, int(n)) for text, n in present.value_counts().items()]
    except TypeError:  # unhashable values (lists given directly): one at a time
        distinct = [(text, 1) for text in present.to_numpy()]
    counts: Counter[str] = Counter()
    for text, times in distinct:
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
                counts[str(name)] += times
    return counts


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _codes(values: pd.Series, names: tuple[str, ...]) -> npt.NDArray[np.int64]:
    """Each row's index in ``names`` (-1 for anything else, missing included), without a string per row: a
    million-row log's text columns come as Categorical, whose few categories are looked up once."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        lookup = np.array([names.index(str(c)) if str(c) in names else -1 for c in values.cat.categories] + [-1])
        return lookup[values.cat.codes.to_numpy()]  # code -1 (missing) picks the trailing -1
    codes: npt.NDArray[np.int64] = pd.Categorical(values.astype(str), categories=list(names)).codes.astype(np.int64)
    return codes


def _hours(received_at: pd.Series) -> npt.NDArray[np.int64]:
    """Hour of day (UTC) of each row, -1 where the time is missing."""
    stamps = pd.to_datetime(received_at, utc=True).dt.tz_convert(None).to_numpy()
    hours = stamps.astype("datetime64[h]").astype(np.int64) % 24
    return np.where(np.isnat(stamps), -1, hours)


def _value_counts(values: pd.Series) -> dict[str, int]:
    """Rows per value as text (missing as "nan"), sorted by the text; counted on the column's own codes."""
    counts: dict[str, int] = {}
    for key, count in values.value_counts(dropna=False).items():
        if count:
            text = str(key)
            counts[text] = counts.get(text, 0) + int(count)
    return dict(sorted(counts.items()))


def _crosstab(rows: npt.NDArray[np.int64], columns: npt.NDArray[np.int64], shape: tuple[int, int]) -> np.ndarray:
    """Counts of (row, column) code pairs, rows or columns of -1 left out."""
    keep = (rows >= 0) & (columns >= 0)
    flat = np.bincount(rows[keep] * shape[1] + columns[keep], minlength=shape[0] * shape[1])
    return flat.reshape(shape)


SCORE_BINS: Final = 100


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
    decision = _codes(log["decision"], DECISION_ORDER)
    counts = np.bincount(decision[decision >= 0], minlength=len(DECISION_ORDER))
    data: dict[str, Any] = {
        "volumes": {"rows": len(log)},
        "decisions": {name: int(counts[i]) for i, name in enumerate(DECISION_ORDER)},
        "pending_labels": int(pending_labels),
    }
    kinds = _codes(log["type"], TRANSACTION_TYPES)
    present = np.bincount(kinds[kinds >= 0], minlength=len(TRANSACTION_TYPES))
    by_type = _crosstab(kinds, decision, (len(TRANSACTION_TYPES), len(DECISION_ORDER)))
    data["decisions_by_type"] = {
        kind: {name: int(by_type[k, i]) for i, name in enumerate(DECISION_ORDER)}
        for k, kind in enumerate(TRANSACTION_TYPES)
        if present[k]
    }
    if "received_at" in log.columns and len(log):
        by_hour = _crosstab(_hours(log["received_at"]), decision, (24, len(DECISION_ORDER)))
        data["volumes"]["by_hour"] = {name: [int(v) for v in by_hour[:, i]] for i, name in enumerate(DECISION_ORDER)}
    for column in ("model_version", "arm"):
        if column in log.columns:
            data["volumes"][f"by_{column}"] = _value_counts(log[column])
    if labels is not None:
        y = pd.to_numeric(labels, errors="coerce").to_numpy(dtype=np.float64)
        known = np.isfinite(y)
        fraud = known & (y > 0)
        legit = known & (y == 0)
        amount = log["amount"].to_numpy(dtype=np.float64)
        block, review, allow = decision == 2, decision == 1, decision == 0
        data["outcomes"] = {
            "labelled": int(known.sum()),
            "frauds": int(fraud.sum()),
            "caught": int(np.sum(fraud & block)),
            "caught_amount": float(amount[fraud & block].sum()),
            "reviewed": int(np.sum(fraud & review)),
            "reviewed_amount": float(amount[fraud & review].sum()),
            "missed": int(np.sum(fraud & allow)),
            "missed_amount": float(amount[fraud & allow].sum()),
            "false_alerts": int(np.sum(legit & block)),
            "pending": int(pending_labels),
        }
    if "reasons" in log.columns:
        flagged = log["reasons"].to_numpy()[decision >= 1]
        data["top_reasons"] = [
            {"reason": name, "count": count}
            for name, count in _reason_names(pd.Series(flagged, dtype=object)).most_common(TOP_REASONS)
        ]
    if "latency_ms" in log.columns:
        latency = pd.to_numeric(log["latency_ms"], errors="coerce").to_numpy(dtype=np.float64)
        latency = latency[np.isfinite(latency)]
        if latency.size:
            p50, p95, p99 = np.percentile(latency, [50, 95, 99])
            data["latency_ms"] = {
                "p50": float(p50),
                "p95": float(p95),
                "p99": float(p99),
                "max": float(latency.max()),
                "rows": int(latency.size),
            }
    if "score" in log.columns and len(log):
        scores = pd.to_numeric(log["score"], errors="coerce").to_numpy(dtype=np.float64)
        scores = scores[np.isfinite(scores)]
        if scores.size:
            low, high = min(0.0, float(scores.min())), max(1.0, float(scores.max()))
            histogram, _ = np.histogram(scores, bins=SCORE_BINS, range=(low, high))
            data["score_histogram"] = {"low": low, "high": high, "counts": [int(c) for c in histogram]}
    if drift is not None:
        data["drift"] = drift.to_dict()
    if performance is not None:
        data["performance"] = performance.to_dict()
    return data


def _figures(data: dict[str, Any]) -> dict[str, str]:
    """The plots, as inline SVG drawn from the report's numbers (`monitoring.report_plots`)."""
    figures: dict[str, str] = {}
    by_hour = data["volumes"].get("by_hour")
    if by_hour:
        series = [
            (name, colour, by_hour[name])
            for name, colour in zip(DECISION_ORDER, ("#9bb7d4", "#f0b429", "#d64545"), strict=True)
        ]
        figures["volume"] = report_plots.stacked_bars(
            "Volume by hour and decision", "hour received (UTC)", "transactions", [str(h) for h in range(24)], series
        )
    histogram = data.get("score_histogram")
    if histogram:
        edges = np.linspace(histogram["low"], histogram["high"], len(histogram["counts"]) + 1)
        figures["scores"] = report_plots.log_histogram(
            "Score distribution",
            "fraud probability",
            "transactions (log scale)",
            [round(float(e), 6) for e in edges],
            histogram["counts"],
        )
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
        figures=_figures(data),
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
