"""The HTML model report: every section present, images embedded, text escaped, nothing fetched from outside."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from pathlib import Path

import markupsafe
import numpy as np
import numpy.typing as npt
import pytest

from fraud.errors import EvaluationError
from fraud.evaluation.report import FIGURES, build_figures, save_figures, write_model_report
from fraud.evaluation.scorecard import EvaluationReport, evaluate_block
from fraud.evaluation.thresholds import Thresholds, choose_thresholds
from fraud.features import BALANCE_ARTEFACT_NOTE

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
IMG = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


@dataclass(frozen=True)
class Blocks:
    scores: dict[str, npt.NDArray[np.float64]]
    labels: dict[str, npt.NDArray[np.int8]]
    amounts: dict[str, npt.NDArray[np.float64]]
    thresholds: Thresholds
    reports: dict[str, EvaluationReport]


def _block(n: int, seed: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int8], npt.NDArray[np.float64]]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.03).astype(np.int8)
    scores = 1.0 / (1.0 + np.exp(-rng.normal(-3.0 + 3.0 * y, 1.2)))
    return scores, y, rng.lognormal(11.0, 1.5, n)


@pytest.fixture(scope="module")
def blocks() -> Blocks:
    data = {"validation": _block(4000, 1), "test": _block(5000, 2)}
    scores = {name: d[0] for name, d in data.items()}
    labels = {name: d[1] for name, d in data.items()}
    amounts = {name: d[2] for name, d in data.items()}
    thresholds = choose_thresholds(scores["validation"], labels["validation"], amounts["validation"])
    reports = {name: evaluate_block(scores[name], labels[name], amounts[name], thresholds, block=name) for name in data}
    return Blocks(scores, labels, amounts, thresholds, reports)


@pytest.fixture(scope="module")
def report_html(blocks: Blocks, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("report") / "nested" / "model_report.html"
    written = write_model_report(
        path,
        title="fraud-detector v3 <strict> & friends",
        reports=blocks.reports,
        scores_by_block=blocks.scores,
        labels_by_block=blocks.labels,
        amounts_by_block=blocks.amounts,
        thresholds=blocks.thresholds,
        feature_importance={"log_amount": 0.41, "type_TRANSFER": 0.3, "hour": 0.12, "$weird$ <name>": -0.05},
        notes=[BALANCE_ARTEFACT_NOTE, "<script>alert('x')</script>"],
        extra_tables={"Data <fingerprint>": {"rows": 9000, "sha256": "ab<cd>", "fraud_share": 0.0312}},
    )
    assert written == path
    return path.read_text(encoding="utf-8")


def test_every_section_is_present_in_order(report_html: str) -> None:
    ids = ["notes", "headline-metrics", "thresholds", *FIGURES, "extra-data-fingerprint"]
    positions = [report_html.find(f'<section id="{section}"') for section in ids]
    assert all(p >= 0 for p in positions), dict(zip(ids, positions, strict=True))
    assert positions == sorted(positions)  # notes come first, before any number


def test_images_are_embedded_pngs(report_html: str) -> None:
    images = IMG.findall(report_html)
    assert len(images) == len(FIGURES) == 5
    for encoded in images:
        png = base64.b64decode(encoded, validate=True)
        assert png.startswith(PNG_MAGIC)
        assert len(png) > 5_000  # a real plot, not an empty canvas


def test_report_is_self_contained(report_html: str) -> None:
    assert report_html.startswith("<!DOCTYPE html>")
    assert "<script" not in report_html
    assert "<link" not in report_html
    assert "http://" not in report_html
    assert "https://" not in report_html
    assert not re.search(r'src="(?!data:)', report_html)


def test_text_is_escaped(report_html: str) -> None:
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in report_html
    assert "<title>fraud-detector v3 &lt;strict&gt; &amp; friends</title>" in report_html
    assert "<h2>Data &lt;fingerprint&gt;</h2>" in report_html
    assert "<td>ab&lt;cd&gt;</td>" in report_html
    assert "<td>9,000</td>" in report_html


def test_notes_are_shown_prominently(report_html: str) -> None:
    notes = report_html[report_html.index('<section id="notes"') : report_html.index("</section>")]
    assert 'class="notes"' in notes
    assert str(markupsafe.escape(BALANCE_ARTEFACT_NOTE)) in notes


def test_headline_numbers_match_the_reports(blocks: Blocks, report_html: str) -> None:
    section = report_html[report_html.index('id="headline-metrics"') : report_html.index('id="thresholds"')]
    assert "<th>validation</th><th>test</th>" in section
    for report in blocks.reports.values():
        assert f"<b>{report.average_precision:.4f}</b>" in section
        assert f"(fraud rate {report.fraud_rate:.4f} = no skill)" in section  # AP beside its no-skill level
        for value in (report.roc_auc, report.recall_at_fpr_0_1pct, report.recall_at_fpr_1pct, report.f1_at_threshold):
            assert f"<td>{value:.4f}</td>" in section
        assert f"<b>{report.expected_cost:,.0f}</b> vs {report.baseline_cost:,.0f}" in section
    for label in ("Recall at 0.1% false-positive rate", "Precision at a 2.0% alert budget", "Recall at a 2.0% alert"):
        assert label in section


def test_thresholds_section_shows_the_band(blocks: Blocks, report_html: str) -> None:
    section = report_html[report_html.index('id="thresholds"') : report_html.index('id="precision_recall"')]
    t = blocks.thresholds
    assert t.review < t.block <= 1.0
    assert f"scores in [{t.review:.6g}, {t.block:.6g})" in section
    assert "5,000" in section  # the review cost
    assert "2.00%" in section  # the alert budget


def test_figures_are_saved_and_reused(blocks: Blocks, tmp_path: Path) -> None:
    figures = build_figures(
        scores_by_block=blocks.scores,
        labels_by_block=blocks.labels,
        amounts_by_block=blocks.amounts,
        thresholds=blocks.thresholds,
        feature_importance=None,
    )
    assert list(figures) == [name for name in FIGURES if name != "feature_importance"]
    paths = save_figures(tmp_path / "figures", figures)
    assert [p.name for p in paths] == [f"{name}.png" for name in figures]
    assert all(p.read_bytes().startswith(PNG_MAGIC) for p in paths)

    page = write_model_report(
        tmp_path / "report.html",
        title="reuse",
        reports={"test": blocks.reports["test"]},
        scores_by_block=blocks.scores,
        labels_by_block=blocks.labels,
        amounts_by_block=blocks.amounts,
        thresholds=blocks.thresholds,
        feature_importance=None,
        notes=[],
        figures=figures,
    ).read_text(encoding="utf-8")
    embedded = [base64.b64decode(e) for e in IMG.findall(page)]
    assert embedded == list(figures.values())
    assert "The model reports no feature importance." in page
    assert "No caveats recorded." in page


def test_a_threshold_that_blocks_nothing_still_renders(blocks: Blocks, tmp_path: Path) -> None:
    nothing = choose_thresholds(
        blocks.scores["validation"], blocks.labels["validation"], blocks.amounts["validation"], alert_budget=0.0
    )
    assert nothing.blocks_nothing
    figures = build_figures(
        scores_by_block={"validation": blocks.scores["validation"]},
        labels_by_block={"validation": blocks.labels["validation"]},
        amounts_by_block={"validation": blocks.amounts["validation"]},
        thresholds=nothing,
        feature_importance={"a": 1.0},
    )
    assert set(figures) == set(FIGURES)
    report = evaluate_block(
        blocks.scores["validation"], blocks.labels["validation"], blocks.amounts["validation"], nothing
    )
    page = write_model_report(
        tmp_path / "r.html",
        title="nothing",
        reports={"validation": report},
        scores_by_block={"validation": blocks.scores["validation"]},
        labels_by_block={"validation": blocks.labels["validation"]},
        amounts_by_block={"validation": blocks.amounts["validation"]},
        thresholds=nothing,
        feature_importance={"a": 1.0},
        notes=["n"],
        figures=figures,
    ).read_text(encoding="utf-8")
    assert "never (nothing is blocked)" in page


def test_inconsistent_or_fraudless_blocks_are_refused(blocks: Blocks) -> None:
    with pytest.raises(EvaluationError, match="labels are given for blocks"):
        build_figures(
            scores_by_block=blocks.scores,
            labels_by_block={"test": blocks.labels["test"]},
            amounts_by_block=blocks.amounts,
            thresholds=blocks.thresholds,
        )
    with pytest.raises(EvaluationError, match="the test block has no fraud"):
        build_figures(
            scores_by_block={"test": blocks.scores["test"]},
            labels_by_block={"test": np.zeros_like(blocks.labels["test"])},
            amounts_by_block={"test": blocks.amounts["test"]},
            thresholds=blocks.thresholds,
        )
