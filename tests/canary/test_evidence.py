"""The evidence dataclasses refuse inconsistent windows with a message naming the field."""

from __future__ import annotations

import re

import numpy as np
import pytest

from serving.canary.evidence import ArmLabels, ArmSample, Window


def test_from_answers_counts_requests_errors_and_decisions() -> None:
    arm = ArmSample.from_answers(
        latencies_ms=[5.0, 7.0, 9.0], failed=[False, True, False], scores=[0.1, 0.9, 0.5], decisions=[0, 2, 1]
    )
    assert (arm.requests, arm.errors, arm.rows, arm.blocks, arm.reviews) == (3, 1, 3, 1, 1)
    assert arm.summary()["latency_p50_ms"] == 7.0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"requests": 1, "errors": 2, "rows": 0, "blocks": 0, "reviews": 0}, "errors"),
        ({"requests": 1, "errors": 0, "rows": 1, "blocks": 1, "reviews": 1}, "blocks + reviews"),
        ({"requests": -1, "errors": 0, "rows": 0, "blocks": 0, "reviews": 0}, "requests"),
        ({"requests": 1, "errors": 0, "rows": 1, "blocks": 0, "reviews": 0, "scores": [1.5]}, "scores"),
        ({"requests": 1, "errors": 0, "rows": 1, "blocks": 0, "reviews": 0, "latencies_ms": [np.nan]}, "latencies_ms"),
    ],
)
def test_arm_sample_names_the_bad_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=re.escape(field)):
        ArmSample(**kwargs)  # type: ignore[arg-type]


def test_window_checks_shadow_share_and_pairs() -> None:
    arm = ArmSample.empty()
    with pytest.raises(ValueError, match="expected_challenger_share"):
        Window(0.0, 1.0, arm, arm, expected_challenger_share=0.05, shadow=True)
    with pytest.raises(ValueError, match="end"):
        Window(1.0, 1.0, arm, arm, expected_challenger_share=0.0, shadow=True)
    with pytest.raises(ValueError, match="paired_scores"):
        Window(0.0, 1.0, arm, arm, 0.0, True, paired_scores=(np.zeros(2), np.zeros(3)))
    with pytest.raises(ValueError, match=r"paired_decisions\[1\]"):
        Window(0.0, 1.0, arm, arm, 0.0, True, paired_decisions=(np.zeros(1, np.int8), np.array([3], np.int8)))
    with pytest.raises(ValueError, match="y_true"):
        ArmLabels(y_true=np.array([0, 2]), scores=np.zeros(2))
    window = Window(0.0, 2.0, arm, arm, 0.0, True, paired_scores=(np.zeros(2), np.ones(2)))
    assert window.seconds == 2.0
    assert window.summary()["paired"] == 2
