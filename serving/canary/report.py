"""The evidence report of a rollout: JSON for machines, HTML with plots for people, kept after the rollout ends.

It answers "why was v7 rolled back at 25 %?" from what the rollout itself recorded: the transitions with their
reasons and the checks at each (`RolloutState.history`), every check's last verdict with its statistic, always-valid
interval, p-value, error budget and sample size, and the timeline of analysis windows (``windows.jsonl``: counts,
latency and score summaries per arm, weight, checks). Three plots, as PNGs embedded in the HTML:

- the challenger's weight over time, with the phase changes marked;
- each check's statistic over the looks, with its interval and its tolerance;
- the score distributions of both arms over the whole rollout (log-spaced bins, since fraud scores crowd near 0).

`publish_report` writes both files locally (``<FRAUD_HOME>/canary/report/``), to the object store
(``s3://<bucket>/canary-reports/<model>/v<challenger>-<started>/``) and into the challenger's MLflow run
(artifacts ``canary-report/``), and returns where.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fraud.errors import FraudError

if TYPE_CHECKING:
    from fraud.settings import Settings
    from serving.canary.rollout import RolloutState

log = logging.getLogger(__name__)

SCORE_BINS = np.concatenate([[0.0], np.logspace(-4, 0, 41)])
"""Histogram edges of the scores kept per window for the report: fraud scores crowd near 0, so log-spaced."""
REPORT_JSON = "report.json"
REPORT_HTML = "report.html"


@dataclass(frozen=True)
class ReportLocations:
    local: Path
    object_store: str | None
    mlflow_run: str | None

    def to_json(self) -> dict[str, Any]:
        return {"local": str(self.local), "object_store": self.object_store, "mlflow_run": self.mlflow_run}


def read_windows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def build_report(
    state: RolloutState, windows: list[dict[str, Any]], *, model_name: str, endpoint: str
) -> dict[str, Any]:
    """Everything the report shows, as one JSON-ready object."""
    totals: dict[str, dict[str, int]] = {}
    for arm in ("champion", "challenger"):
        totals[arm] = {
            key: int(sum(w["window"][arm][key] for w in windows))
            for key in ("requests", "errors", "rows", "blocks", "reviews")
        }
    histograms = {
        arm: np.sum([w["scores"][arm] for w in windows], axis=0).astype(int).tolist() if windows else []
        for arm in ("champion", "challenger")
    }
    return {
        "model_name": model_name,
        "endpoint": endpoint,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "outcome": str(state.phase),
        "summary": state.summary(),
        "spec": state.spec.to_dict(),
        "reason": state.reason,
        "checks": state.checks,
        "history": [t.to_dict() for t in state.history],
        "totals": totals,
        "windows": windows,
        "score_histograms": {"edges": SCORE_BINS.tolist(), **histograms},
    }


def _png(figure: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _weight_plot(report: dict[str, Any], start: float) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 2.8))
    history = report["history"]
    times = [(t["time"] - start) for t in history] + [(report["summary"]["updated_at"] - start)]
    weights = [t["weight"] for t in history] + [history[-1]["weight"] if history else 0]
    ax.step(times, weights, where="post", color="tab:blue")
    for t in history:
        ax.axvline(t["time"] - start, color="grey", lw=0.6, ls=":")
        ax.annotate(t["to"], (t["time"] - start, max(weights) * 0.9 + 1), fontsize=7, rotation=90, va="top")
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("challenger weight %")
    ax.set_title("weight over time")
    return _png(fig)


def _checks_plot(report: dict[str, Any], start: float, names: list[str]) -> str:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(names), 1, figsize=(8, 1.9 * len(names)), sharex=True, squeeze=False)
    for ax, name in zip(axes[:, 0], names, strict=True):
        xs, stat, lo, hi, tol = [], [], [], [], None
        for w in report["windows"]:
            check = w["checks"].get(name)
            if not check or check.get("statistic") is None:
                continue
            xs.append(w["time"] - start)
            stat.append(check["statistic"])
            interval = check.get("interval") or [None, None]
            lo.append(np.nan if interval[0] is None else interval[0])
            hi.append(np.nan if interval[1] is None else interval[1])
            tol = check.get("tolerance")
        if xs:
            ax.plot(xs, stat, color="tab:blue", marker=".", lw=1)
            ax.fill_between(xs, lo, hi, color="tab:blue", alpha=0.2, label="always-valid interval")
            if tol is not None:
                ax.axhline(tol, color="tab:red", ls="--", lw=1, label="tolerance")
        last = report["checks"].get(name, {})
        ax.set_title(f"{name}: {last.get('statistic_name', '')} ({last.get('status', 'no data')})", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[-1, 0].set_xlabel("seconds since start")
    return _png(fig)


def _scores_plot(report: dict[str, Any]) -> str:
    import matplotlib.pyplot as plt

    edges = np.asarray(report["score_histograms"]["edges"])
    fig, ax = plt.subplots(figsize=(8, 2.8))
    for arm, colour in (("champion", "tab:blue"), ("challenger", "tab:orange")):
        counts = np.asarray(report["score_histograms"][arm] or np.zeros(len(edges) - 1))
        total = counts.sum()
        if total:
            ax.stairs(counts / total, np.maximum(edges, 1e-5), label=f"{arm} ({int(total):,} scores)", color=colour)
    ax.set_xscale("log")
    ax.set_xlabel("fraud score")
    ax.set_ylabel("share of rows")
    ax.set_title("score distributions over the rollout")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    else:  # a rollout that ended before its first window (e.g. the canary removed by hand)
        ax.text(0.5, 0.5, "no scores were recorded", transform=ax.transAxes, ha="center", va="center")
    return _png(fig)


def plots(report: dict[str, Any]) -> dict[str, str]:
    """The three plots as base64 PNGs: weight over time, each check's statistic with its bounds, scores."""
    import matplotlib

    matplotlib.use("Agg")
    start = report["summary"]["started_at"]
    out = {"weight": _weight_plot(report, start), "scores": _scores_plot(report)}
    names = sorted({name for w in report["windows"] for name in w["checks"]})
    if names:
        out["checks"] = _checks_plot(report, start, names)
    return out


_TEMPLATE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Rollout of {{ r.model_name }} v{{ r.spec.challenger_version }}</title>
<style>body{font-family:sans-serif;max-width:960px;margin:2em auto}td,th{padding:2px 8px;border-bottom:1px solid #ddd;
font-size:13px;text-align:left}.fail{color:#b00}.pass{color:#070}.inconclusive{color:#a60}</style></head><body>
<h1>{{ r.model_name }}: v{{ r.spec.challenger_version }} against champion v{{ r.spec.champion_version }}</h1>
<p><b>Outcome: {{ r.outcome }}</b>{% if r.reason %}: {{ r.reason }}{% endif %}<br>
weight at the end {{ r.summary.weight }} %; steps {{ r.spec.steps }}; shadow {{ r.spec.shadow }};
min {{ r.spec.min_requests }} requests and {{ r.spec.min_seconds }} s per step; endpoint {{ r.endpoint }};
report generated {{ r.generated_at }}</p>
<h2>Transitions</h2><table><tr><th>t (s)</th><th>from</th><th>to</th><th>weight</th><th>why</th></tr>
{% for t in r.history %}<tr><td>{{ "%.1f"|format(t.time - r.summary.started_at) }}</td><td>{{ t.from or "" }}</td>
<td>{{ t.to }}</td><td>{{ t.weight }}</td><td>{{ t.reason }}</td></tr>{% endfor %}</table>
<h2>Checks (last verdict)</h2><table><tr><th>check</th><th>status</th><th>statistic</th><th>interval</th>
<th>tolerance</th><th>p</th><th>alpha</th><th>n</th><th>reason</th></tr>
{% for name, c in r.checks.items() %}<tr><td>{{ name }}</td><td class="{{ c.status }}">{{ c.status }}</td>
<td>{{ fmt(c.statistic) }} {{ c.statistic_name }}</td><td>{{ fmt_interval(c.interval) }}</td>
<td>{{ fmt(c.tolerance) }}</td>
<td>{{ fmt(c.p_value) }}</td><td>{{ fmt(c.alpha) }}</td><td>{{ c.sample_size }}</td><td>{{ c.reason }}</td></tr>
{% endfor %}</table>
<h2>Traffic</h2><table><tr><th>arm</th><th>requests</th><th>errors</th><th>rows</th><th>blocks</th><th>reviews</th></tr>
{% for arm, t in r.totals.items() %}<tr><td>{{ arm }}</td><td>{{ t.requests }}</td><td>{{ t.errors }}</td>
<td>{{ t.rows }}</td><td>{{ t.blocks }}</td><td>{{ t.reviews }}</td></tr>{% endfor %}</table>
{% for key, title in (("weight", "Weight over time"), ("checks", "Checks over time"), ("scores", "Scores")) %}
{% if key in plots %}<h2>{{ title }}</h2><img alt="{{ title }}" src="data:image/png;base64,{{ plots[key] }}">{% endif %}
{% endfor %}
<p>{{ r.windows|length }} analysis windows; the full timeline is in report.json.</p></body></html>
"""


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _fmt_interval(interval: Any) -> str:
    if not interval:
        return "–"
    return f"[{_fmt(interval[0])}, {_fmt(interval[1])}]"


def render_html(report: dict[str, Any]) -> str:
    import jinja2

    env = jinja2.Environment(autoescape=True, undefined=jinja2.ChainableUndefined)
    template = env.from_string(_TEMPLATE)
    return template.render(r=report, plots=plots(report), fmt=_fmt, fmt_interval=_fmt_interval)


def publish_report(
    settings: Settings, state: RolloutState, *, windows_path: Path, local: Path, endpoint: str
) -> ReportLocations:
    """Write the report locally, to the object store and to the challenger's MLflow run; say where.

    The local copy is always written; a store or registry that cannot be reached is logged and left out.
    """
    report = build_report(state, read_windows(windows_path), model_name=settings.model_name, endpoint=endpoint)
    html = render_html(report)
    local.mkdir(parents=True, exist_ok=True)
    (local / REPORT_JSON).write_text(json.dumps(report, indent=2, default=str))
    (local / REPORT_HTML).write_text(html)
    store_uri = None
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(state.started_at))
    try:
        from fraud.store import ObjectStore, S3Uri

        bucket = settings.canary_report_bucket or settings.data_bucket
        prefix = f"canary-reports/{settings.model_name}/v{state.spec.challenger_version}-{stamp}"
        store = ObjectStore.from_settings(settings)
        store.put_bytes(
            S3Uri(bucket, f"{prefix}/{REPORT_JSON}"), (local / REPORT_JSON).read_bytes(), "application/json"
        )
        store.put_bytes(S3Uri(bucket, f"{prefix}/{REPORT_HTML}"), html.encode(), "text/html")
        store_uri = f"s3://{bucket}/{prefix}/"
    except (FraudError, OSError, ValueError) as exc:
        log.warning("report not written to the object store: %s", exc)
    run_uri = None
    try:
        from fraud.registry import connect

        client = connect(settings)
        version = client.get_model_version(settings.model_name, state.spec.challenger_version)
        if version.run_id:
            client.log_artifact(version.run_id, str(local / REPORT_JSON), "canary-report")
            client.log_artifact(version.run_id, str(local / REPORT_HTML), "canary-report")
            run_uri = f"runs:/{version.run_id}/canary-report/"
    except Exception as exc:  # MLflow raises many kinds; a missing run must not lose the local report
        log.warning("report not logged to the challenger's MLflow run: %s", exc)
    locations = ReportLocations(local, store_uri, run_uri)
    (local / "locations.json").write_text(json.dumps(locations.to_json(), indent=2))
    return locations
