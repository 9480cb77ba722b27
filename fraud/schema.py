"""The PaySim transaction schema: the one place that names its columns, types and value domains.

The column order and spelling are the published log's header, byte for byte (``oldbalanceOrg`` without the
``i`` included), because the real Kaggle file is checked against it exactly.
"""

from __future__ import annotations

from typing import Final

import pyarrow as pa

SCHEMA_VERSION: Final = "paysim-v1"
"""Bumped whenever the columns, types or domains below change; stored in every data manifest."""

COLUMNS: Final[tuple[str, ...]] = (
    "step",
    "type",
    "amount",
    "nameOrig",
    "oldbalanceOrg",
    "newbalanceOrig",
    "nameDest",
    "oldbalanceDest",
    "newbalanceDest",
    "isFraud",
    "isFlaggedFraud",
)

TRANSACTION_TYPES: Final[tuple[str, ...]] = ("CASH_IN", "CASH_OUT", "DEBIT", "PAYMENT", "TRANSFER")
"""Every `type` value PaySim emits, sorted; anything else is invalid input."""

LABEL: Final = "isFraud"
TIME: Final = "step"
"""Hours since the start of the simulated month: 1..743 in the published log."""

MAX_STEP: Final = 743
HOURS_PER_DAY: Final = 24

DECISION_TIME_FIELDS: Final[tuple[str, ...]] = (
    "step",
    "type",
    "amount",
    "nameOrig",
    "nameDest",
    "oldbalanceOrg",
    "oldbalanceDest",
)
"""What is known when a transfer is authorised, before it posts."""

POST_TRANSACTION_FIELDS: Final[tuple[str, ...]] = ("newbalanceOrig", "newbalanceDest", "isFlaggedFraud", LABEL)
"""Known only after the fact; no feature may ever read these."""

BALANCE_COLUMNS: Final[tuple[str, ...]] = ("oldbalanceOrg", "newbalanceOrig", "oldbalanceDest", "newbalanceDest")

ARROW_SCHEMA: Final = pa.schema(
    [
        pa.field("step", pa.int32(), nullable=False),
        pa.field("type", pa.string(), nullable=False),
        pa.field("amount", pa.float64(), nullable=False),
        pa.field("nameOrig", pa.string(), nullable=False),
        pa.field("oldbalanceOrg", pa.float64(), nullable=False),
        pa.field("newbalanceOrig", pa.float64(), nullable=False),
        pa.field("nameDest", pa.string(), nullable=False),
        pa.field("oldbalanceDest", pa.float64(), nullable=False),
        pa.field("newbalanceDest", pa.float64(), nullable=False),
        pa.field("isFraud", pa.int8(), nullable=False),
        pa.field("isFlaggedFraud", pa.int8(), nullable=False),
    ],
    metadata={"schema_version": SCHEMA_VERSION},
)
"""The canonical in-memory and Parquet layout of a validated PaySim dataset."""


def hour_of_day(step: int) -> int:
    """Hour of day for a step, PaySim's convention (``step % 24``; step 24 is hour 0 of day 1)."""
    return step % HOURS_PER_DAY


def day_of_month(step: int) -> int:
    """Day of the month for a step, 1-based (steps 1..24 are day 1)."""
    return (step - 1) // HOURS_PER_DAY + 1
