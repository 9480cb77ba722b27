"""The 24 features of the published strict-feature results on the real PaySim log, to compare like with like.

The published last-week results (XGBoost AP 0.341 / ROC AUC 0.893, CatBoost 0.380 / 0.908; see
`fraud.data.published.LastWeek`) were not computed on this project's ``strict`` feature set. The notebook that
printed them (ris3abh/aml-p2p-fraud-detection, ``notebooks/02_feature_engineering.ipynb``, "truly clean
features", 24 columns, no balance of either side, no ids) builds, from ``step``, ``type`` and ``amount``:

- time: hour of day (``step % 24``) as sine/cosine and three hour flags; day (``step // 24``) only as
  sine/cosine with a 30-day period, so the test week (days 24-30) wraps round to the start of the cycle;
- amount: raw, ``log10(amount + 1)``, a z-score against the per-type mean and standard deviation of the
  training block, over-1M and round-thousand / round-10k flags (on the float32 amount, as it was loaded);
- type: five one-hot columns, TRANSFER/CASH_OUT flags and three interactions.

The day encoding is what sets these results apart. Training ends on day 23 (step 575); the test week's days
24-30 land on cycle positions next to the first days of the month (day 30 *is* day 0), the busiest days with
the lowest fraud rate, so the model scores the quiet last week somewhat like the start of the month. Without
`DAY_COLUMNS` the same model on the same generated month scores far higher (``published-no-day`` in the check).
They live here, with the check, never in the product.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from fraud import schema

TYPES = schema.TRANSACTION_TYPES
DAY_PERIOD = 30
"""The notebook's period of the day encoding (a month of PaySim is 31 days: day 30 equals day 0)."""
HIGH_AMOUNT = 1_000_000.0
PEAK_HOURS = (3, 6)
NIGHT_FROM, NIGHT_TO = 22, 6
BUSINESS_HOURS = (9, 17)
RISKY_TYPES = ("TRANSFER", "CASH_OUT")
DAY_COLUMNS = ("day_sin", "day_cos")

NAMES: tuple[str, ...] = (
    "amount",
    "hour_sin",
    "hour_cos",
    "day_sin",
    "day_cos",
    "is_fraud_peak_hour",
    "is_night",
    "is_business_hours",
    "log_amount",
    "amount_zscore_by_type",
    "is_high_amount",
    "is_round_thousand",
    "is_round_10k",
    "is_risky_type",
    "is_transfer",
    "is_cashout",
    "risky_type_fraud_hour",
    "risky_type_high_amount",
    "high_amount_night",
    *(f"type_{kind}" for kind in TYPES),
)


@dataclass(frozen=True)
class TypeAmounts:
    """Per-type mean and standard deviation (ddof 1, as pandas) of the training block's amounts, all rows."""

    mean: dict[str, float]
    std: dict[str, float]


def _amounts32(table: pa.Table) -> npt.NDArray[np.float32]:
    return np.asarray(table["amount"].to_numpy(), dtype=np.float32)


def _types(table: pa.Table) -> npt.NDArray[np.str_]:
    return np.asarray(table["type"].to_numpy(zero_copy_only=False), dtype=str)


def fit_type_amounts(train: pa.Table) -> TypeAmounts:
    """The z-score's constants, from the training block only (fraud rows included, as published)."""
    amount = _amounts32(train).astype(np.float64)
    kinds = _types(train)
    mean: dict[str, float] = {}
    std: dict[str, float] = {}
    for kind in TYPES:
        values = amount[kinds == kind]
        mean[kind] = float(values.mean()) if values.size else 0.0
        std[kind] = float(values.std(ddof=1)) if values.size > 1 else 0.0
    return TypeAmounts(mean, std)


def feature_matrix(table: pa.Table, amounts: TypeAmounts) -> npt.NDArray[np.float32]:
    """The 24 published features (columns in `NAMES` order) of a block of raw transactions."""
    step = np.asarray(table[schema.TIME].to_numpy(), dtype=np.int64)
    hour = step % schema.HOURS_PER_DAY
    day = step // schema.HOURS_PER_DAY
    amount32 = _amounts32(table)
    amount = amount32.astype(np.float64)
    kinds = _types(table)
    one_hot = {kind: kinds == kind for kind in TYPES}
    mean = np.zeros(len(amount))
    std = np.zeros(len(amount))
    for kind, rows in one_hot.items():
        mean[rows] = amounts.mean[kind]
        std[rows] = amounts.std[kind]
    peak = (hour >= PEAK_HOURS[0]) & (hour <= PEAK_HOURS[1])
    night = (hour >= NIGHT_FROM) | (hour <= NIGHT_TO)
    high = amount > HIGH_AMOUNT
    risky = one_hot[RISKY_TYPES[0]] | one_hot[RISKY_TYPES[1]]
    columns: dict[str, npt.ArrayLike] = {
        "amount": amount,
        "hour_sin": np.sin(2 * np.pi * hour / schema.HOURS_PER_DAY),
        "hour_cos": np.cos(2 * np.pi * hour / schema.HOURS_PER_DAY),
        "day_sin": np.sin(2 * np.pi * day / DAY_PERIOD),
        "day_cos": np.cos(2 * np.pi * day / DAY_PERIOD),
        "is_fraud_peak_hour": peak,
        "is_night": night,
        "is_business_hours": (hour >= BUSINESS_HOURS[0]) & (hour <= BUSINESS_HOURS[1]),
        "log_amount": np.log10(amount + 1.0),
        "amount_zscore_by_type": (amount - mean) / (std + 1e-6),
        "is_high_amount": high,
        "is_round_thousand": np.mod(amount32, np.float32(1_000)) == 0,
        "is_round_10k": np.mod(amount32, np.float32(10_000)) == 0,
        "is_risky_type": risky,
        "is_transfer": one_hot["TRANSFER"],
        "is_cashout": one_hot["CASH_OUT"],
        "risky_type_fraud_hour": risky & peak,
        "risky_type_high_amount": risky & high,
        "high_amount_night": high & night,
        **{f"type_{kind}": rows for kind, rows in one_hot.items()},
    }
    return np.column_stack([np.asarray(columns[name], dtype=np.float32) for name in NAMES])
