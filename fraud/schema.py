"""PaySim constants under their historical names: a thin view of `fraud.contracts.PAYSIM`, which declares them.

The data-generation and profiling code speaks in these names; nothing here is defined twice. New code reads the
contract itself (`from fraud.contracts import PAYSIM`).
"""

from __future__ import annotations

from typing import Final

import pyarrow as pa

from fraud.contracts.paysim import (
    BALANCE_COLUMNS,
    HOURS_PER_DAY,
    PAYSIM,
    PUBLISHED_MAX_STEP,
    TRANSACTION_TYPES,
    day_of_month,
    hour_of_day,
)

SCHEMA_VERSION: Final[str] = PAYSIM.version
COLUMNS: Final[tuple[str, ...]] = PAYSIM.columns
LABEL: Final[str] = PAYSIM.label
TIME: Final[str] = PAYSIM.time
MAX_STEP: Final = PUBLISHED_MAX_STEP
DECISION_TIME_FIELDS: Final[tuple[str, ...]] = PAYSIM.decision_time_names
POST_TRANSACTION_FIELDS: Final[tuple[str, ...]] = PAYSIM.post_transaction_names
ARROW_SCHEMA: Final[pa.Schema] = PAYSIM.arrow_schema

__all__ = [
    "ARROW_SCHEMA",
    "BALANCE_COLUMNS",
    "COLUMNS",
    "DECISION_TIME_FIELDS",
    "HOURS_PER_DAY",
    "LABEL",
    "MAX_STEP",
    "POST_TRANSACTION_FIELDS",
    "SCHEMA_VERSION",
    "TIME",
    "TRANSACTION_TYPES",
    "day_of_month",
    "hour_of_day",
]
