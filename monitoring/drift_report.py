"""The drift check as a page: our verdict per column beside Evidently's defaults, and Evidently's own report.

Evidently's HTML is the report users know; it is written next to ours (``<name>.evidently.html``) and linked.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd

from monitoring.drift import DriftResult
from monitoring.evidently_report import EvidentlyVerdict
from monitoring.reference import Reference


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if not np.isfinite(value):
            return "–"
        if value == 0 or 1e-3 <= abs(value) < 1e5:
            return f"{value:.4g}"
        return f"{value:.3g}"
    return str(value)


@cache
def _template() -> jinja2.Template:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("monitoring", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return environment.get_template("drift_report.html.j2")


def render(result: DriftResult, evidently: EvidentlyVerdict | None = None, evidently_file: str | None = None) -> str:
    """Our verdict table, with Evidently's default verdict per column when given."""
    return _template().render(
        title=f"Drift check · reference version {result.reference_version}",
        result=result.to_dict(),
        evidently=evidently.to_dict() | {"columns": {c.name: vars(c) for c in evidently.columns.values()}}
        if evidently
        else None,
        evidently_file=evidently_file,
        fmt=_fmt,
    )


def write(
    path: Path, result: DriftResult, reference: Reference, window: pd.DataFrame, *, with_evidently: bool = True
) -> tuple[Path, Path | None]:
    """Write our page at ``path`` and, unless told not to, Evidently's report beside it.

    Returns:
        Our page and Evidently's (None when skipped).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    evidently_path: Path | None = None
    verdict: EvidentlyVerdict | None = None
    if with_evidently:
        from monitoring import evidently_report

        snapshot = evidently_report.run_report(reference.sample, window)
        verdict = evidently_report.verdict(snapshot)
        evidently_path = evidently_report.save_report(snapshot, path.with_suffix(".evidently.html"))
    path.write_text(render(result, verdict, evidently_path.name if evidently_path else None))
    return path, evidently_path
