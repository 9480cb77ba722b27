"""Reasons in analyst words: only features that push the score up, strongest first, phrased from the spec."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from fraud import schema
from fraud.features import build_features, make_spec
from serving.reasons import PHRASES, Explainer, phrase_for

MEDIANS = {"CASH_IN": 100_000.0, "CASH_OUT": 50_000.0, "DEBIT": 5_000.0, "PAYMENT": 10_000.0, "TRANSFER": 20_000.0}
SPEC = make_spec("decision_time", MEDIANS)
RAW: dict[str, Any] = {
    "step": np.array([3, 14]),
    "type": ["TRANSFER", "PAYMENT"],
    "amount": np.array([164_000.0, 2_000.0]),
    "oldbalanceOrg": np.array([164_000.0, 10_000.0]),
    "oldbalanceDest": np.array([0.0, 5.0]),
}
X = build_features(RAW, SPEC)


def contributions(row_values: dict[str, float], rows: int = 1) -> np.ndarray:
    out = np.zeros((rows, len(SPEC.names) + 1))
    for name, value in row_values.items():
        out[:, SPEC.names.index(name)] = value
    out[:, -1] = -4.0  # bias: never a reason
    return out


def test_top_three_are_the_strongest_upward_pushes_in_analyst_words() -> None:
    # given contributions where two features lower the score and four raise it
    c = contributions(
        {
            "amount_vs_type_median": 2.1,
            "night": 0.9,
            "drains_origin": 3.0,
            "dest_balance_zero": 0.2,
            "type_TRANSFER": -0.5,
            "day": -1.0,
        }
    )
    # when the first transaction is explained
    (reasons,) = Explainer(SPEC, top=3).explain(c, X, RAW, [0])
    # then the three strongest upward pushes are named, strongest first, in words
    assert [r.text for r in reasons] == [
        "amount equals the whole origin balance",
        "amount 8.2× the usual for TRANSFER",
        "night-time transaction (03 h)",
    ]
    assert [r.feature for r in reasons] == ["drains_origin", "amount_vs_type_median", "night"]
    assert reasons[0].as_json() == {
        "reason": "amount equals the whole origin balance",
        "feature": "drains_origin",
        "contribution": 3.0,
    }


def test_features_that_lower_the_score_are_never_reasons() -> None:
    c = contributions({"amount": -1.0, "hour": -0.2, "type_TRANSFER": 1e-6})
    assert Explainer(SPEC).explain(c, X, RAW, [0]) == [[]]


def test_duplicate_phrases_merge_into_one_reason() -> None:
    # amount and log_amount say the same thing; hour and night at 03 h too
    c = contributions({"amount": 0.5, "log_amount": 0.4, "hour": 0.3, "night": 0.2, "oldbalanceOrg": 0.1})
    (reasons,) = Explainer(SPEC).explain(c, X, RAW, [0])
    assert [r.text for r in reasons] == [
        "amount 164,000.00",
        "night-time transaction (03 h)",
        "origin balance 164,000.00 before the transaction",
    ]
    assert reasons[0].contribution == pytest.approx(0.9)
    assert reasons[1].contribution == pytest.approx(0.5)


def test_rows_are_explained_by_their_own_values() -> None:
    c = contributions({"hour": 1.0, "type_CASH_OUT": 0.5, "dest_balance_zero": 0.4}, rows=1)
    (reasons,) = Explainer(SPEC).explain(c, X, RAW, [1])  # the PAYMENT at 14 h
    assert [r.text for r in reasons] == [
        "transaction at 14 h",
        "not a CASH_OUT (type PAYMENT)",
        "destination account holds funds",
    ]


def test_every_feature_of_every_feature_set_has_a_phrase() -> None:
    row_values = dict.fromkeys(SPEC.names, 1.0)
    for name in SPEC.names:
        assert name in PHRASES or name.startswith("type_"), name
    explainer = Explainer(SPEC, top=len(SPEC.names))
    (reasons,) = explainer.explain(contributions(row_values), X, RAW, [0])
    assert all(r.text and ": " not in r.text for r in reasons)  # none fell back to "description: value"
    assert {f"type_{t}" for t in schema.TRANSACTION_TYPES} <= {r.feature for r in reasons}


def test_an_unknown_feature_falls_back_to_its_description() -> None:
    phrase = phrase_for("mystery", SPEC)
    from serving.reasons import Row

    assert phrase(2.5, Row(features={}, raw={}, spec=SPEC)) == "mystery: 2.5"


def test_top_zero_gives_no_reasons() -> None:
    assert Explainer(SPEC, top=0).explain(contributions({"amount": 1.0}), X, RAW, [0]) == [[]]
