"""Pictures of a profile against the published log: time shapes and amount distributions.

Drawn with matplotlib's object API on an Agg canvas (no GUI backend, no global pyplot state), so it works in a
headless pipeline step and in threads. PNG, or a self-contained HTML page that embeds the PNG and the checks.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from fraud.data.profile import AMOUNT_BINS, Check, Profile, compare
from fraud.data.published import Published, load_published
from fraud.errors import ConfigError
from fraud.schema import TRANSACTION_TYPES

SUFFIXES: Final = (".png", ".html")
_COLOURS: Final = dict(
    zip(TRANSACTION_TYPES, ("tab:green", "tab:red", "tab:purple", "tab:blue", "tab:orange"), strict=True)
)


def _shares(values: Sequence[float]) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    total = array.sum()
    result: np.ndarray = array / total if total > 0 else array
    return result


def _time_panel(
    axis: Any, labels: list[int], ours: dict[str, Sequence[float]], theirs: dict[str, Sequence[float]], unit: str
) -> None:
    x = np.arange(len(labels))
    axis.plot(x, _shares(ours["rows"]), color="tab:blue", marker="o", markersize=3, label="rows: this dataset")
    axis.plot(x, _shares(theirs["rows"]), color="tab:blue", linestyle="--", label="rows: published")
    axis.plot(x, _shares(ours["fraud"]), color="tab:red", marker="o", markersize=3, label="fraud: this dataset")
    axis.plot(x, _shares(theirs["fraud"]), color="tab:red", linestyle="--", label="fraud: published")
    axis.set_xticks(x[:: max(1, len(x) // 12)], [str(v) for v in labels[:: max(1, len(x) // 12)]])
    axis.set_xlabel(unit)
    axis.set_ylabel("share of rows / of fraud")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)


def _histogram_panel(axis: Any, profile: Profile, published: Published) -> None:
    edges = np.asarray(AMOUNT_BINS)
    centres = np.sqrt(np.maximum(edges[:-1], 0.5) * edges[1:])
    for tx_type in TRANSACTION_TYPES:
        counts = np.asarray(profile.amount_histograms[tx_type], dtype=np.float64)
        if counts.sum() == 0:
            continue
        colour = _COLOURS[tx_type]
        axis.plot(centres, counts / counts.sum(), color=colour, label=tx_type)
        axis.axvline(published.legit_median_amount_by_type[tx_type], color=colour, linestyle="--", linewidth=1)
    axis.set_xscale("log")
    axis.set_xlim(1, 1e9)
    axis.set_xlabel("amount (log scale); dashed: published legitimate medians")
    axis.set_ylabel("share of the type's legitimate rows")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)


def _fraud_panel(axis: Any, profile: Profile, published: Published) -> None:
    edges = np.asarray(AMOUNT_BINS)
    centres = np.sqrt(np.maximum(edges[:-1], 0.5) * edges[1:])
    counts = np.asarray(profile.amount_histograms["FRAUD"], dtype=np.float64)
    if counts.sum() > 0:
        axis.bar(
            centres, counts / counts.sum(), width=np.diff(edges) * 0.9, color="tab:red", alpha=0.6, label="fraud rows"
        )
    fraud = published.fraud_amount
    for value, label, style in (
        (fraud.median, "published median", "--"),
        (fraud.p95, "published p95", ":"),
        (fraud.max, "cap (10M)", "-"),
    ):
        axis.axvline(value, color="black", linestyle=style, linewidth=1, label=label)
    axis.set_xscale("log")
    axis.set_xlim(1, 1e9)
    axis.set_xlabel("fraud amount (log scale)")
    axis.set_ylabel("share of fraudulent rows")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)


def render_png(profile: Profile, published: Published | None = None) -> bytes:
    """The four panels as PNG bytes."""
    pub = published or load_published()
    figure = Figure(figsize=(14, 9), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.subplots(2, 2)
    hours = list(range(24))
    _time_panel(
        axes[0][0], hours,
        {"rows": profile.hourly(), "fraud": profile.hourly(fraud=True)},
        {"rows": pub.hourly_rows, "fraud": pub.hourly_fraud},
        "hour of day (step % 24)",
    )  # fmt: skip
    axes[0][0].set_title("Hourly shape: rows follow the daily cycle, fraud is flat")
    ours_days, ours_fraud = profile.daily(), profile.daily(fraud=True)
    days = sorted(set(ours_days) | set(range(1, len(pub.daily_rows) + 1)))
    _time_panel(
        axes[0][1], days,
        {"rows": [ours_days.get(d, 0) for d in days], "fraud": [ours_fraud.get(d, 0) for d in days]},
        {"rows": [pub.daily_rows[d - 1] if d <= len(pub.daily_rows) else 0 for d in days],
         "fraud": [pub.daily_fraud[d - 1] if d <= len(pub.daily_fraud) else 0 for d in days]},
        "day of month ((step - 1) // 24 + 1)",
    )  # fmt: skip
    axes[0][1].set_title("Daily shape: front-loaded month, fraud every day")
    _histogram_panel(axes[1][0], profile, pub)
    axes[1][0].set_title("Legitimate amounts by type")
    _fraud_panel(axes[1][1], profile, pub)
    axes[1][1].set_title("Fraud amounts: victims' balances in chunks of at most 10M")
    figure.suptitle(f"PaySim profile: {profile.rows:,} rows, {profile.fraud:,} fraudulent (dashed: published log)")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _html(png: bytes, checks: Sequence[Check], profile: Profile) -> str:
    rows = "\n".join(
        f"<tr class='{'pass' if c.passed else 'fail'}'><td>{html.escape(c.name)}</td><td>{c.value:.6g}</td>"
        f"<td>{c.published:.6g}</td><td>±{c.tolerance:.3g}</td><td>{'pass' if c.passed else 'FAIL'}</td>"
        f"<td>{html.escape(c.basis)}</td></tr>"
        for c in checks
    )
    image = base64.b64encode(png).decode("ascii")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>PaySim profile</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}} td,th{{padding:2px 8px;
border-bottom:1px solid #ddd;text-align:right}} td:first-child{{text-align:left}} .fail{{background:#fdd}}</style>
</head><body>
<h1>PaySim profile: {profile.rows:,} rows, {profile.fraud:,} fraudulent</h1>
<img alt="hourly and daily shapes, amount distributions" src="data:image/png;base64,{image}">
<h2>Checks ({sum(c.passed for c in checks)} of {len(checks)} pass)</h2>
<table><tr><th>statistic</th><th>value</th><th>expected</th><th>tolerance</th><th>result</th><th>basis</th></tr>
{rows}
</table></body></html>
"""


def plot_profile(profile: Profile, path: Path, published: Published | None = None) -> Path:
    """Write the profile's pictures to `path`: a PNG, or an HTML page embedding it with the checks table.

    Raises:
        ConfigError: the extension is neither .png nor .html.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ConfigError(f"cannot plot to '{path.name}': use one of {', '.join(SUFFIXES)} as the extension")
    png = render_png(profile, published)
    if suffix == ".png":
        path.write_bytes(png)
    else:
        path.write_text(_html(png, compare(profile, published), profile), encoding="utf-8")
    return path
