"""The published notebook's 24 features, computed by hand on a few rows: the like-for-like check rests on them."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from benchmarks import published_features as pf
from benchmarks.strict_features_check import PUBLISHED_FEATURES, PUBLISHED_NO_DAY, featurizer
from fraud import schema


def _table(rows: list[tuple[int, str, float, int]]) -> pa.Table:
    steps, kinds, amounts, labels = zip(*rows, strict=True)
    return pa.table(
        {
            schema.TIME: pa.array(steps, pa.int64()),
            "type": pa.array(kinds, pa.string()),
            "amount": pa.array(amounts, pa.float64()),
            schema.LABEL: pa.array(labels, pa.int8()),
        }
    )


TRAIN = _table(
    [
        (1, "TRANSFER", 100.0, 0),
        (2, "TRANSFER", 300.0, 1),
        (3, "CASH_OUT", 50.0, 0),
        (4, "CASH_OUT", 70.0, 0),
        (5, "PAYMENT", 10.0, 0),
    ]
)


def _row(matrix: np.ndarray, i: int) -> dict[str, float]:
    return dict(zip(pf.NAMES, matrix[i].tolist(), strict=True))


def test_there_are_the_published_twenty_four() -> None:
    assert len(pf.NAMES) == 24 == len(set(pf.NAMES))
    assert not any("balance" in name.lower() for name in pf.NAMES)


def test_type_amounts_come_from_the_training_block_with_pandas_ddof() -> None:
    amounts = pf.fit_type_amounts(TRAIN)
    assert amounts.mean["TRANSFER"] == pytest.approx(200.0)
    assert amounts.std["TRANSFER"] == pytest.approx(math.sqrt(2 * 100.0**2))  # ddof 1
    assert amounts.mean["CASH_IN"] == 0.0  # no rows: neutral constants, no NaN


def test_a_night_transfer_of_ten_million_in_the_last_week() -> None:
    step = 30 * 24 + 4  # day 30 (= day 0 of the 30-day cycle), 04:00
    matrix = pf.feature_matrix(_table([(step, "TRANSFER", 10_000_000.0, 1)]), pf.fit_type_amounts(TRAIN))
    row = _row(matrix, 0)
    assert row["hour_sin"] == pytest.approx(math.sin(2 * math.pi * 4 / 24), abs=1e-6)
    assert row["day_sin"] == pytest.approx(0.0, abs=1e-6)
    assert row["day_cos"] == pytest.approx(1.0)
    assert row["is_fraud_peak_hour"] == row["is_night"] == 1.0
    assert row["is_business_hours"] == 0.0
    assert row["is_high_amount"] == row["is_round_thousand"] == row["is_round_10k"] == 1.0
    assert row["is_risky_type"] == row["is_transfer"] == row["type_TRANSFER"] == 1.0
    assert row["is_cashout"] == row["type_CASH_OUT"] == 0.0
    assert row["risky_type_fraud_hour"] == row["risky_type_high_amount"] == row["high_amount_night"] == 1.0
    assert row["log_amount"] == pytest.approx(math.log10(10_000_001.0))
    assert row["amount_zscore_by_type"] == pytest.approx((10_000_000.0 - 200.0) / (math.sqrt(2) * 100.0), rel=1e-5)


def test_a_midday_payment_with_cents() -> None:
    matrix = pf.feature_matrix(_table([(12, "PAYMENT", 1234.56, 0)]), pf.fit_type_amounts(TRAIN))
    row = _row(matrix, 0)
    assert row["is_business_hours"] == 1.0
    assert row["is_night"] == row["is_fraud_peak_hour"] == row["is_risky_type"] == 0.0
    assert row["is_round_thousand"] == row["is_round_10k"] == row["is_high_amount"] == 0.0
    assert row["type_PAYMENT"] == 1.0
    assert sum(row[f"type_{kind}"] for kind in schema.TRANSACTION_TYPES) == 1.0


def test_the_check_offers_them_beside_our_feature_sets() -> None:
    features = featurizer(TRAIN, PUBLISHED_FEATURES)(TRAIN)
    assert features.shape == (TRAIN.num_rows, 24)
    strict = featurizer(TRAIN, "strict")(TRAIN)
    assert strict.shape[0] == TRAIN.num_rows and strict.shape[1] != 24


def test_without_the_day_columns_only_they_are_gone() -> None:
    full = featurizer(TRAIN, PUBLISHED_FEATURES)(TRAIN)
    no_day = featurizer(TRAIN, PUBLISHED_NO_DAY)(TRAIN)
    kept = [i for i, name in enumerate(pf.NAMES) if name not in pf.DAY_COLUMNS]
    assert no_day.shape == (TRAIN.num_rows, 22)
    np.testing.assert_array_equal(no_day, full[:, kept])
