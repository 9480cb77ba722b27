"""The REST answers written in pieces are byte for byte what orjson writes for the plain lists and dicts."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from serving.predictor import FraudPredictor, Scored, _v1_answer, _v1_predictions_json, _v2_rest_outputs
from serving.reasons import Reason
from serving.validation import Batch

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS  # the server's, as FastAPI's ORJSONResponse


def scored(probability: np.ndarray, explained: np.ndarray, version: str = "7") -> Scored:
    decisions = np.where(probability >= 0.9, "block", np.where(probability >= 0.5, "review", "allow")).astype(object)
    rows = probability.size
    return Scored(
        batch=Batch(columns={}, rows=rows, reasons="flagged"),
        features=np.zeros((rows, 1)),
        probability=probability,
        decisions=decisions,
        explained_rows=explained,
        contributions=None,
        version=version,
        counts={},
    )


def reasons_for(rows: int, explained: np.ndarray, rng: np.random.Generator) -> list[list[Reason]]:
    out: list[list[Reason]] = [[] for _ in range(rows)]
    for row in explained.tolist():
        out[row] = [
            Reason(f'amount {rng.uniform(1, 50):.1f}× the usual for "TRANSFER" é', f"f{k}", float(rng.normal()))
            for k in range(int(rng.integers(0, 4)))
        ]
    return out


@pytest.mark.parametrize("rows", [1, 2, 17, 1000])
@pytest.mark.parametrize("with_reasons", [False, True])
def test_interleaved_json_equals_the_dicts_serialised(rows: int, with_reasons: bool) -> None:
    rng = np.random.default_rng(rows)
    # probabilities across the whole range, including the awkward floats: 0, 1, tiny, and shortest-repr edge cases
    probability = rng.beta(0.3, 3.0, size=rows)
    probability[: min(rows, 4)] = [0.0, 1.0, 5e-324, 0.1 + 0.2][: min(rows, 4)]
    explained = np.flatnonzero(probability >= 0.5) if with_reasons else np.zeros(0, dtype=np.intp)
    result = scored(probability, explained, version='1"2')
    reasons = reasons_for(rows, explained, rng) if with_reasons else None
    expected = orjson.dumps(_v1_answer(result, reasons), option=_OPTIONS)
    fast = orjson.dumps({"predictions": orjson.Fragment(_v1_predictions_json(result, reasons))}, option=_OPTIONS)
    assert fast == expected
    assert orjson.loads(fast)["predictions"][-1]["fraud_probability"] == probability[-1]


@pytest.mark.parametrize("rows", [1, 17, 1000])
@pytest.mark.parametrize("with_reasons", [False, True])
def test_v2_outputs_written_at_once_equal_the_columns_serialised(rows: int, with_reasons: bool) -> None:
    rng = np.random.default_rng(rows)
    probability = rng.beta(0.3, 3.0, size=rows)
    explained = np.flatnonzero(probability >= 0.5) if with_reasons else np.zeros(0, dtype=np.intp)
    result = scored(probability, explained, version='1"2')
    reasons = reasons_for(rows, explained, rng) if with_reasons else None
    expected = [
        {"name": name, "shape": [rows], "datatype": datatype, "parameters": None, "data": values.tolist()}
        for name, datatype, values in FraudPredictor._v2_columns(result, reasons)
    ]
    fast = list(_v2_rest_outputs(result, reasons).values())
    assert orjson.dumps(fast, option=_OPTIONS) == orjson.dumps(expected, option=_OPTIONS)
