"""The published statistics of the real PaySim log, as one typed, immutable object.

The generator is calibrated against these figures and the profile compares any dataset with them, so they are
loaded from one packaged file (``published_stats.json``, computed on the full Kaggle file of 6,362,620 rows) and
never retyped elsewhere. A few id statistics of the same file that the JSON does not carry are kept here as
constants, with their source.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any, Final

from fraud.errors import ConfigError
from fraud.schema import HOURS_PER_DAY, MAX_STEP, TRANSACTION_TYPES

STATS_RESOURCE: Final = "published_stats.json"

DISTINCT_ORIGINS: Final = 6_353_307
"""Distinct ``nameOrig`` values in the full log (6,344,009 ids used once, 9,283 twice, 15 three times)."""
DISTINCT_DESTINATIONS: Final = 2_722_362
"""Distinct ``nameDest`` values in the full log."""
MAX_ORIGIN_REPEATS: Final = 3
"""No origin id appears more than three times in the full log."""

DAYS: Final = (MAX_STEP - 1) // HOURS_PER_DAY + 1
"""Days touched by steps 1..743 (the 31st has 23 hours)."""


@dataclass(frozen=True)
class FraudAmounts:
    """Amount statistics of the fraudulent rows."""

    median: float
    mean: float
    p95: float
    max: float


@dataclass(frozen=True)
class LastWeek:
    """The test block of the published strict-feature results: the real log's last week, after training on the
    steps before it. Its counts are what a forward split of a faithful month must reproduce, and its results are
    the band a strict model on such a month should land in."""

    first_step: int
    rows: int
    fraud: int
    strict_results: Mapping[str, tuple[float, float]]
    """Model family → (average precision, ROC AUC) on these rows."""

    @property
    def fraud_rate(self) -> float:
        return self.fraud / self.rows


@dataclass(frozen=True)
class Published:
    """Figures computed on the full published log (Kaggle ``ealaxi/paysim1``)."""

    source: str
    rows: int
    fraud: int
    rows_by_type: Mapping[str, int]
    fraud_by_type: Mapping[str, int]
    legit_median_amount_by_type: Mapping[str, float]
    amount_quantiles: Mapping[str, float]
    """Keys ``p25``, ``p50``, ``p75`` over all rows."""
    fraud_amount: FraudAmounts
    flagged_rows: int
    dest_zero_to_zero_fraud: float
    """Share of fraudulent TRANSFER/CASH_OUT rows whose destination balance is 0 before and after."""
    dest_zero_to_zero_legit: float
    """The same share among legitimate TRANSFER/CASH_OUT rows."""
    hourly_rows: tuple[int, ...]
    """Rows per hour of day; index = hour (``step % 24``)."""
    hourly_fraud: tuple[int, ...]
    daily_rows: tuple[int, ...]
    """Rows per day of month; index = day - 1."""
    daily_fraud: tuple[int, ...]
    fraud_only_steps: int
    """Steps with fraudulent rows only, no legitimate one (a full-size month; see ``legit_activity``)."""
    last_legit_step: int
    """The last step with a legitimate row: after it the month has fraud only."""
    last_week: LastWeek
    distinct_origins: int = DISTINCT_ORIGINS
    distinct_destinations: int = DISTINCT_DESTINATIONS
    max_origin_repeats: int = MAX_ORIGIN_REPEATS

    @property
    def legit(self) -> int:
        return self.rows - self.fraud

    @property
    def fraud_rate(self) -> float:
        return self.fraud / self.rows

    @property
    def type_shares(self) -> dict[str, float]:
        return {t: self.rows_by_type[t] / self.rows for t in TRANSACTION_TYPES}

    @property
    def legit_by_type(self) -> dict[str, int]:
        return {t: self.rows_by_type[t] - self.fraud_by_type.get(t, 0) for t in TRANSACTION_TYPES}

    def fraud_rate_in(self, tx_type: str) -> float:
        """Share of fraudulent rows among the rows of one type."""
        return self.fraud_by_type.get(tx_type, 0) / self.rows_by_type[tx_type]

    @property
    def flagged_per_million(self) -> float:
        return self.flagged_rows / self.rows * 1e6

    @property
    def distinct_origin_ratio(self) -> float:
        return self.distinct_origins / self.rows

    @property
    def distinct_destination_ratio(self) -> float:
        return self.distinct_destinations / self.rows


def _by_index(entries: list[dict[str, Any]], key: str, size: int, offset: int) -> tuple[int, ...]:
    values = [0] * size
    for entry in entries:
        values[int(entry[key]) - offset] = int(entry["rows"])
    return tuple(values)


def _fraud_by_index(entries: list[dict[str, Any]], key: str, size: int, offset: int) -> tuple[int, ...]:
    values = [0] * size
    for entry in entries:
        values[int(entry[key]) - offset] = int(entry["fraud"])
    return tuple(values)


def parse_published(raw: Mapping[str, Any]) -> Published:
    """Build `Published` from the JSON document's structure.

    Raises:
        ConfigError: a field is missing or malformed (the packaged file is part of the code, so this is a bug).
    """
    try:
        fraud_amount = raw["fraud_amount"]
        dzz = raw["dest_zero_to_zero_share_transfer_cashout"]
        activity = raw["legit_activity"]
        published = Published(
            source=str(raw["source"]),
            rows=int(raw["rows"]),
            fraud=int(raw["fraud"]),
            rows_by_type=MappingProxyType({t: int(raw["rows_by_type"][t]) for t in TRANSACTION_TYPES}),
            fraud_by_type=MappingProxyType({str(t): int(n) for t, n in raw["fraud_by_type"].items()}),
            legit_median_amount_by_type=MappingProxyType(
                {t: float(raw["legit_median_amount_by_type"][t]) for t in TRANSACTION_TYPES}
            ),
            amount_quantiles=MappingProxyType({k: float(raw["amount_quantiles"][k]) for k in ("p25", "p50", "p75")}),
            fraud_amount=FraudAmounts(
                median=float(fraud_amount["median"]),
                mean=float(fraud_amount["mean"]),
                p95=float(fraud_amount["p95"]),
                max=float(fraud_amount["max"]),
            ),
            flagged_rows=int(raw["isFlaggedFraud_rows"]),
            dest_zero_to_zero_fraud=float(dzz["fraud"]),
            dest_zero_to_zero_legit=float(dzz["legit"]),
            hourly_rows=_by_index(raw["hourly"], "hour", HOURS_PER_DAY, 0),
            hourly_fraud=_fraud_by_index(raw["hourly"], "hour", HOURS_PER_DAY, 0),
            daily_rows=_by_index(raw["daily"], "day", DAYS, 1),
            daily_fraud=_fraud_by_index(raw["daily"], "day", DAYS, 1),
            fraud_only_steps=int(activity["fraud_only_steps"]),
            last_legit_step=int(activity["last_legit_step"]),
            last_week=LastWeek(
                first_step=int(raw["last_week"]["first_step"]),
                rows=int(raw["last_week"]["rows"]),
                fraud=int(raw["last_week"]["fraud"]),
                strict_results=MappingProxyType(
                    {
                        str(family): (float(result["average_precision"]), float(result["roc_auc"]))
                        for family, result in raw["last_week"]["strict_results"].items()
                    }
                ),
            ),
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ConfigError(f"published statistics are malformed: {exc!r}") from exc
    if sum(published.hourly_rows) != published.rows or sum(published.daily_rows) != published.rows:
        raise ConfigError("published statistics are inconsistent: hourly/daily rows do not add up to 'rows'")
    if sum(published.daily_fraud) != published.fraud or sum(published.hourly_fraud) != published.fraud:
        raise ConfigError("published statistics are inconsistent: hourly/daily fraud does not add up to 'fraud'")
    if not 0 < published.last_legit_step <= MAX_STEP or not 0 <= published.fraud_only_steps < MAX_STEP:
        raise ConfigError("published statistics are inconsistent: legit_activity is outside steps 1..743")
    week = published.last_week
    if not 0 < week.first_step <= MAX_STEP or not 0 < week.fraud < week.rows < published.rows:
        raise ConfigError("published statistics are inconsistent: last_week is outside the month")
    return published


@cache
def load_published() -> Published:
    """The packaged published statistics, parsed once per process."""
    text = resources.files("fraud.data").joinpath(STATS_RESOURCE).read_text(encoding="utf-8")
    return parse_published(json.loads(text))
