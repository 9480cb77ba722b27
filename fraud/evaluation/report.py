"""The HTML model report: one self-contained file a reviewer can open anywhere, offline.

Plots are rendered with matplotlib's Agg canvas (no pyplot, so no global backend state and no display needed)
and embedded as base64 PNGs; there is no external JS, CSS or font, so the same file works as a KFP ``HTML``
artifact, an MLflow artifact and an e-mail attachment. Every piece of text that comes from outside this module
(title, notes, block and feature names, extra tables) is HTML-escaped.

Usage from the evaluate step::

    figures = build_figures(scores_by_block=..., labels_by_block=..., amounts_by_block=..., thresholds=t)
    png_paths = save_figures(out_dir, figures)            # log each to MLflow individually
    write_model_report(out_dir / "report.html", ..., figures=figures)   # reuses them, no second rendering
"""

from __future__ import annotations

import base64
import io
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, Final

import jinja2
import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from fraud.errors import EvaluationError
from fraud.evaluation.metrics import (
    FPR_LEVELS,
    OperatingCurve,
    _pr_points,
    _roc_points,
    check_scores,
    confusion_at,
    downsample_indices,
    operating_curve,
)
from fraud.evaluation.scorecard import EvaluationReport
from fraud.evaluation.thresholds import Thresholds

FIGURES: Final[dict[str, str]] = {
    "precision_recall": "Precision–recall curve",
    "roc": "ROC curve",
    "score_distribution": "Score distribution by class",
    "cost_vs_threshold": "Expected cost vs threshold",
    "feature_importance": "Feature importance",
}
"""Figure name (the PNG file stem and the HTML section id) → heading, in report order."""

_PLOT_POINTS: Final = 2000
"""Points per plotted curve: smooth at report size, cheap for blocks of millions of rows."""
_TOP_FEATURES: Final = 25
_COLOURS: Final = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b")
_LEGIT_COLOUR: Final = "#4c72b0"
_FRAUD_COLOUR: Final = "#dd4444"

_Blocks = dict[str, tuple[npt.NDArray[np.float64], npt.NDArray[np.int8], OperatingCurve]]


# --- figures ----------------------------------------------------------------------------------------------


def _label(text: str) -> str:
    """Matplotlib reads ``$…$`` as mathtext; a feature or block name must be drawn literally."""
    return text.replace("$", r"\$")


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    return buffer.getvalue()


def _blocks(
    scores_by_block: Mapping[str, npt.ArrayLike],
    labels_by_block: Mapping[str, npt.ArrayLike],
    amounts_by_block: Mapping[str, npt.ArrayLike],
) -> _Blocks:
    if not scores_by_block:
        raise EvaluationError("the report needs the scores of at least one block")
    names = list(scores_by_block)
    for what, mapping in (("labels", labels_by_block), ("amounts", amounts_by_block)):
        if sorted(mapping) != sorted(names):
            raise EvaluationError(f"{what} are given for blocks {sorted(mapping)}, scores for {sorted(names)}")
    blocks: _Blocks = {}
    for name in names:
        scores = check_scores(scores_by_block[name], name=f"scores of the {name} block")
        curve = operating_curve(scores, labels_by_block[name], amounts_by_block[name])
        curve.require_both_classes("the report's curves", f"the {name} block")
        blocks[name] = (scores, np.asarray(labels_by_block[name]).astype(np.int8), curve)
    return blocks


def _mark_threshold(ax: Axes, x: float, y: float, colour: str, label: str | None) -> None:
    ax.plot([x], [y], marker="o", markersize=7, color=colour, markeredgecolor="black", linestyle="none", label=label)


def _precision_recall_figure(blocks: _Blocks, thresholds: Thresholds) -> Figure:
    figure = Figure(figsize=(7.5, 5))
    ax = figure.add_subplot()
    for i, (name, (scores, labels, curve)) in enumerate(blocks.items()):
        colour = _COLOURS[i % len(_COLOURS)]
        precision, recall, _ = _pr_points(curve, _PLOT_POINTS)
        ap = float(np.sum(np.diff(curve.recall) * curve.precision[1:]))
        rate = curve.positives / curve.rows
        ax.plot(recall, precision, drawstyle="steps-post", color=colour, label=_label(f"{name}: AP {ap:.3f}"))
        ax.axhline(rate, color=colour, linestyle=":", linewidth=1, label=_label(f"{name}: fraud rate {rate:.4f}"))
        at = confusion_at(scores, labels, thresholds.block)
        _mark_threshold(ax, at.recall, at.precision, colour, "block threshold" if i == 0 else None)
    ax.set_xlabel("recall (share of frauds flagged)")
    ax.set_ylabel("precision (share of alerts that are fraud)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title("Precision–recall (dotted: no-skill level = fraud rate)")
    return figure


def _roc_figure(blocks: _Blocks, thresholds: Thresholds) -> Figure:
    figure = Figure(figsize=(11, 4.8))
    linear, low = figure.subplots(1, 2)
    smallest = 1.0
    for i, (name, (scores, labels, curve)) in enumerate(blocks.items()):
        colour = _COLOURS[i % len(_COLOURS)]
        fpr, tpr, _ = _roc_points(curve, _PLOT_POINTS)
        auc = float(
            np.sum(np.diff(curve.fp) * (curve.tp[1:] + curve.tp[:-1])) / (2.0 * curve.positives * curve.negatives)
        )
        linear.plot(fpr, tpr, color=colour, label=_label(f"{name}: AUC {auc:.3f}"))
        # The low-FPR panel is sampled along log(FPR), where the operating region of a fraud model lives.
        floor = 1.0 / curve.negatives
        smallest = min(smallest, floor)
        all_fpr = np.maximum(curve.fpr, floor / 10)
        picked = downsample_indices(np.log10(all_fpr), curve.recall, _PLOT_POINTS)
        low.plot(all_fpr[picked], curve.recall[picked], color=colour, label=_label(name))
        at = confusion_at(scores, labels, thresholds.block)
        for ax in (linear, low):
            _mark_threshold(
                ax, max(at.false_positive_rate, floor / 10), at.recall, colour, "block threshold" if i == 0 else None
            )
    linear.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    linear.set_xlim(0, 1)
    linear.set_title("ROC")
    low.set_xscale("log")
    low.set_xlim(max(smallest / 2, 1e-6), 1)
    for level in FPR_LEVELS:
        low.axvline(level, color="grey", linestyle="--", linewidth=1)
        low.annotate(f"{level:.1%} FPR", (level, 0.02), rotation=90, fontsize=8, color="grey", ha="right")
    low.set_title("ROC at low false-positive rates (log scale)")
    for ax in (linear, low):
        ax.set_xlabel("false-positive rate")
        ax.set_ylabel("recall (true-positive rate)")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    return figure


def _score_distribution_figure(blocks: _Blocks, thresholds: Thresholds) -> Figure:
    figure = Figure(figsize=(5.0 * len(blocks) + 1, 4.5))
    axes = figure.subplots(1, len(blocks), squeeze=False)[0]
    edges = np.linspace(0.0, 1.0, 51)
    for ax, (name, (scores, labels, _)) in zip(axes, blocks.items(), strict=True):
        legit, _ = np.histogram(scores[labels == 0], bins=edges)
        fraud, _ = np.histogram(scores[labels == 1], bins=edges)
        ax.stairs(legit, edges, fill=True, alpha=0.5, color=_LEGIT_COLOUR, label=f"legit ({int(legit.sum()):,})")
        ax.stairs(fraud, edges, fill=True, alpha=0.5, color=_FRAUD_COLOUR, label=f"fraud ({int(fraud.sum()):,})")
        if not thresholds.blocks_nothing:
            ax.axvline(thresholds.block, color="black", linestyle="-", linewidth=1.2, label="block")
        if thresholds.review < thresholds.block:
            ax.axvline(thresholds.review, color="black", linestyle="--", linewidth=1.2, label="review")
        ax.set_yscale("log")
        ax.set_xlim(0, 1)
        ax.set_xlabel("fraud score")
        ax.set_ylabel("transactions (log scale)")
        ax.set_title(_label(f"{name} block"))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return figure


def _cost_figure(blocks: _Blocks, thresholds: Thresholds, validation: str) -> Figure:
    figure = Figure(figsize=(11, 4.8))
    by_threshold, by_rate = figure.subplots(1, 2)
    for i, (name, (_, _, curve)) in enumerate(blocks.items()):
        colour = _COLOURS[i % len(_COLOURS)]
        relative = curve.cost(thresholds.review_cost) / max(curve.fraud_amount, 1e-12)
        x = np.minimum(curve.thresholds, 1.0)
        picked = downsample_indices(x, relative, _PLOT_POINTS)
        by_threshold.plot(x[picked], relative[picked], color=colour, label=_label(name))
        rate = np.maximum(curve.alert_rate, 0.5 / curve.rows)
        picked = downsample_indices(np.log10(rate), relative, _PLOT_POINTS)
        by_rate.plot(rate[picked], relative[picked], color=colour, label=_label(name))
        chosen = int(np.searchsorted(-curve.thresholds, -thresholds.block, side="right")) - 1
        for ax, xs in ((by_threshold, x), (by_rate, rate)):
            _mark_threshold(
                ax, float(xs[chosen]), float(relative[chosen]), colour, "block threshold" if i == 0 else None
            )
    _, _, reference = blocks[validation]
    limit = float(reference.thresholds[reference.index_within(thresholds.alert_budget)])
    if limit <= 1.0:
        by_threshold.axvspan(
            0.0, limit, color="grey", alpha=0.15, label=_label(f"over the alert budget ({validation})")
        )
    else:
        by_threshold.axvspan(0.0, 1.0, color="grey", alpha=0.15, label="over the alert budget: nothing fits")
    by_rate.axvspan(thresholds.alert_budget, 1.0, color="grey", alpha=0.15, label="over the alert budget")
    by_rate.axvline(thresholds.alert_budget, color="grey", linestyle="--", linewidth=1)
    by_threshold.set_xlim(0, 1)
    by_threshold.set_xlabel("block threshold")
    by_threshold.set_title("Expected cost vs threshold")
    by_rate.set_xscale("log")
    by_rate.set_xlabel("alert rate (share of transactions blocked, log scale)")
    by_rate.set_title("Expected cost vs alert rate")
    for ax in (by_threshold, by_rate):
        ax.axhline(1.0, color="black", linestyle=":", linewidth=1, label="no model (all fraud missed)")
        ax.set_ylabel("expected cost / no-model cost")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return figure


def _importance_figure(importance: Mapping[str, float]) -> Figure:
    items = sorted(importance.items(), key=lambda kv: abs(kv[1]), reverse=True)[:_TOP_FEATURES][::-1]
    figure = Figure(figsize=(7.5, 0.3 * len(items) + 1.2))
    ax = figure.add_subplot()
    values = [float(v) for _, v in items]
    ax.barh(range(len(items)), values, color=["#4c72b0" if v >= 0 else "#dd8452" for v in values])
    ax.set_yticks(range(len(items)), [_label(str(k)) for k, _ in items], fontsize=8)
    ax.set_xlabel("importance")
    ax.grid(axis="x", alpha=0.3)
    shown = f"top {len(items)} of {len(importance)}" if len(importance) > len(items) else f"{len(items)} features"
    ax.set_title(f"Feature importance ({shown})")
    return figure


def build_figures(
    *,
    scores_by_block: Mapping[str, npt.ArrayLike],
    labels_by_block: Mapping[str, npt.ArrayLike],
    amounts_by_block: Mapping[str, npt.ArrayLike],
    thresholds: Thresholds,
    feature_importance: Mapping[str, float] | None = None,
    validation_block: str = "validation",
) -> dict[str, bytes]:
    """Render every plot as PNG bytes, keyed by the names in `FIGURES` (feature importance only when given).

    ``validation_block`` is the block the thresholds were chosen on; the alert-budget limit is drawn from it
    (the first block when there is no block of that name). Each block is sorted once; curves are down-sampled
    to a few thousand points, so blocks of millions of rows plot in about a second each.
    """
    blocks = _blocks(scores_by_block, labels_by_block, amounts_by_block)
    validation = validation_block if validation_block in blocks else next(iter(blocks))
    figures = {
        "precision_recall": _png(_precision_recall_figure(blocks, thresholds)),
        "roc": _png(_roc_figure(blocks, thresholds)),
        "score_distribution": _png(_score_distribution_figure(blocks, thresholds)),
        "cost_vs_threshold": _png(_cost_figure(blocks, thresholds, validation)),
    }
    if feature_importance:
        figures["feature_importance"] = _png(_importance_figure(feature_importance))
    return figures


def save_figures(directory: Path, figures: Mapping[str, bytes]) -> list[Path]:
    """Write each figure as ``<directory>/<name>.png`` (for ``mlflow.log_artifact``) and return the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, png in figures.items():
        path = directory / f"{name}.png"
        path.write_bytes(png)
        paths.append(path)
    return paths


# --- HTML -------------------------------------------------------------------------------------------------

_STYLE: Final = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1150px; color: #222; line-height: 1.45; padding: 0 1em; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.8em; }
.meta { color: #666; font-size: 0.9em; }
.notes { background: #fff4ce; border-left: 6px solid #e0a800; padding: 0.6em 1.2em; margin: 1.2em 0; }
.notes h2 { border: none; margin-top: 0.3em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.93em; }
th, td { border: 1px solid #ddd; padding: 0.35em 0.8em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #f3f3f3; }
.aside { color: #666; font-size: 0.88em; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
"""

_FIGURE_CAPTIONS: Final[dict[str, str]] = {
    "precision_recall": "Dotted lines: each block's fraud rate, the average precision of a model that ranks at "
    "random. Dots: the operating point of the block threshold.",
    "roc": "Right: the same curves on a log false-positive axis, where a fraud model operates; dashed lines at "
    "the 0.1% and 1% false-positive rates the headline table reports.",
    "score_distribution": "Counts per score bin on a log scale; solid line: block threshold, dashed: start of "
    "the review band.",
    "cost_vs_threshold": "Expected cost relative to having no model (1.0 = every fraud missed). Shaded: "
    "thresholds whose alert rate exceeds the alert budget on the block the thresholds were chosen on.",
    "feature_importance": "As given by the training step (larger = more influence on the score; the measure "
    "depends on the model family).",
}


def _num(value: float, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if math.isfinite(value) else "–"


def _pct(value: float) -> str:
    return f"{value:.2%}" if math.isfinite(value) else "–"


def _money(value: float) -> str:
    return f"{value:,.0f}"


def _threshold_text(value: float) -> str:
    return "never (nothing is blocked)" if value > 1.0 else f"{value:.6g}"


def _cell(value: object) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.6g}"
    return str(value)


@dataclass(frozen=True)
class _Cell:
    """One headline value as the template shows it: plain text, optionally bold, with an optional aside."""

    text: str
    strong: bool = False
    after: str = ""
    aside: str | None = None


def _headline_rows(report: EvaluationReport) -> list[tuple[str, _Cell]]:
    """(row label, cell) for one block; labels are fixed text, values are numbers formatted here."""
    saving = report.cost_saving / report.baseline_cost if report.baseline_cost > 0 else 0.0
    return [
        ("Transactions", _Cell(f"{report.rows:,}")),
        ("Frauds (fraud rate)", _Cell(f"{report.positives:,} ({report.fraud_rate:.3%})")),
        (
            "Average precision",
            _Cell(
                _num(report.average_precision), strong=True, aside=f"fraud rate {_num(report.fraud_rate)} = no skill"
            ),
        ),
        ("ROC AUC", _Cell(_num(report.roc_auc))),
        ("Recall at 0.1% false-positive rate", _Cell(_num(report.recall_at_fpr_0_1pct))),
        ("Recall at 1% false-positive rate", _Cell(_num(report.recall_at_fpr_1pct))),
        ("Precision at the block threshold", _Cell(_num(report.precision_at_threshold))),
        ("Recall at the block threshold", _Cell(_num(report.recall_at_threshold))),
        ("F1 at the block threshold", _Cell(_num(report.f1_at_threshold))),
        ("Share of fraud amount caught", _Cell(_num(report.amount_recall_at_threshold))),
        ("Alert rate at the block threshold", _Cell(_pct(report.alert_rate_at_threshold))),
        ("Review band (share of transactions)", _Cell(_pct(report.review_rate))),
        (f"Precision at a {report.alert_budget:.1%} alert budget", _Cell(_num(report.precision_at_budget))),
        (f"Recall at a {report.alert_budget:.1%} alert budget", _Cell(_num(report.recall_at_budget))),
        ("Alert rate actually used by the budget (whole tie groups)", _Cell(_pct(report.alert_rate_at_budget))),
        (
            "Expected cost vs no model",
            _Cell(
                _money(report.expected_cost),
                strong=True,
                after=f" vs {_money(report.baseline_cost)}",
                aside=f"{saving:.1%} saved",
            ),
        ),
        ("Missed fraud amount", _Cell(_money(report.missed_fraud_amount))),
        (
            "False alerts × review cost",
            _Cell(
                f"{report.false_alerts:,} × {_money(report.review_cost)} = "
                f"{_money(report.false_alerts * report.review_cost)}"
            ),
        ),
        ("Caught fraud amount", _Cell(_money(report.caught_fraud_amount))),
        ("Confusion (TP / FP / TN / FN)", _Cell(f"{report.tp:,} / {report.fp:,} / {report.tn:,} / {report.fn:,}")),
    ]


def _headline(reports: Mapping[str, EvaluationReport]) -> list[dict[str, Any]]:
    """The headline table's rows: a label and one cell per block, blocks in the order given."""
    per_block = [_headline_rows(report) for report in reports.values()]
    return [
        {"label": label, "cells": [rows[index][1] for rows in per_block]}
        for index, (label, _) in enumerate(per_block[0])
    ]


def _threshold_rows(thresholds: Thresholds) -> list[tuple[str, str]]:
    t = thresholds
    band = (
        "empty (review threshold = block threshold)"
        if t.review >= t.block
        else f"scores in [{_threshold_text(t.review)}, {_threshold_text(t.block)})"
    )
    rows: list[tuple[str, str]] = [
        ("Block threshold (score ≥ it is blocked)", _threshold_text(t.block)),
        ("Review threshold (start of the review band)", _threshold_text(t.review)),
        ("Review band", band),
        ("Alert budget", _pct(t.alert_budget)),
        ("Review cost per false alert", _money(t.review_cost)),
        ("Review band target share", _pct(t.review_share)),
        ("Expected cost on validation", _money(t.expected_cost_on_validation)),
        ("Alert rate on validation", _pct(t.alert_rate_on_validation)),
    ]
    if t.baseline_cost_on_validation is not None:
        rows.append(("No-model cost on validation", _money(t.baseline_cost_on_validation)))
    if t.review_rate_on_validation is not None:
        rows.append(("Review band share on validation", _pct(t.review_rate_on_validation)))
    if t.recall_on_validation is not None:
        rows.append(("Recall at the block threshold on validation", _num(t.recall_on_validation)))
    return rows


@cache
def _template() -> jinja2.Template:
    """The report's template (``templates/model_report.html.j2``), every value HTML-escaped by autoescape."""
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("fraud.evaluation", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    return environment.get_template("model_report.html.j2")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "table"


def write_model_report(
    path: Path,
    *,
    title: str,
    reports: Mapping[str, EvaluationReport],
    scores_by_block: Mapping[str, npt.ArrayLike],
    labels_by_block: Mapping[str, npt.ArrayLike],
    amounts_by_block: Mapping[str, npt.ArrayLike],
    thresholds: Thresholds,
    feature_importance: Mapping[str, float] | None,
    notes: Sequence[str],
    extra_tables: Mapping[str, Mapping[str, object]] | None = None,
    figures: Mapping[str, bytes] | None = None,
    validation_block: str = "validation",
) -> Path:
    """Write the self-contained HTML model report to ``path`` and return it.

    ``reports`` gives the headline table's columns, in order (e.g. ``{"validation": …, "test": …}``); the
    ``*_by_block`` arrays feed the plots. ``notes`` are shown first, in a highlighted box: caveats such as the
    decision_time balance artefact (`fraud.features.FeatureSpec.notes`) must not be missed by a reader who only
    looks at the numbers. ``figures`` from `build_figures` are reused when given (so the caller can also log the
    PNGs); otherwise they are rendered here.
    """
    if not reports:
        raise EvaluationError("the report needs at least one block's EvaluationReport")
    if figures is None:
        figures = build_figures(
            scores_by_block=scores_by_block,
            labels_by_block=labels_by_block,
            amounts_by_block=amounts_by_block,
            thresholds=thresholds,
            feature_importance=feature_importance,
            validation_block=validation_block,
        )
    missing = [name for name in FIGURES if name not in figures and name != "feature_importance"]
    if missing:
        raise EvaluationError(f"figure '{missing[0]}' is missing from the figures given to the report")
    html = _template().render(
        title=title,
        style=_STYLE,
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        blocks=list(reports),
        notes=list(notes),
        headline=_headline(reports),
        threshold_rows=_threshold_rows(thresholds),
        figures=[
            {
                "name": name,
                "heading": heading,
                "caption": _FIGURE_CAPTIONS[name],
                "png": base64.b64encode(figures[name]).decode("ascii") if name in figures else None,
            }
            for name, heading in FIGURES.items()
        ],
        extra_tables=[
            {"name": name, "slug": _slug(name), "rows": [(str(k), _cell(v)) for k, v in table.items()]}
            for name, table in (extra_tables or {}).items()
        ],
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return path
