"""The report's score plot for a rollout that ended before its first window (a canary removed by hand): it says so
instead of drawing an empty legend, which matplotlib warned about in every such report."""

from __future__ import annotations

import base64
import warnings

from serving.canary.report import SCORE_BINS, _scores_plot


def _plot(champion: list[int], challenger: list[int]) -> bytes:
    report = {"score_histograms": {"edges": SCORE_BINS.tolist(), "champion": champion, "challenger": challenger}}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return base64.b64decode(_scores_plot(report))


def test_a_rollout_without_scores_gets_a_plot_saying_so_without_warnings() -> None:
    assert _plot([], []).startswith(b"\x89PNG")


def test_both_arms_scores_are_drawn() -> None:
    bins = len(SCORE_BINS) - 1
    assert _plot([1] * bins, [2] * bins).startswith(b"\x89PNG")
