"""Per-feature contributions turned into reasons an analyst can read: "amount 8.2× the usual for TRANSFER".

The model explains each score as log-odds contributions per feature (`fraud.modeling.NativeModel.contributions`:
TreeSHAP for XGBoost, occlusion for hist_gb, coefficient × deviation for logreg). A reason is a feature whose
contribution pushes the score *up* (towards fraud) by more than `MIN_CONTRIBUTION`; features that lower the score
are never reasons. The strongest three are phrased by one function per feature, which reads the transaction's own
values and the constants stored in the version's feature spec (e.g. the training median amount per type), so the
wording always matches the model being served. A feature this module does not know yet is phrased from the spec's
description and value rather than dropped, so a new feature set cannot silently lose its reasons.

The words for the transaction's own fields are the PaySim contract's nouns (`fraud.contracts.PAYSIM`: "origin
balance", "transaction type", "amount"), and the hour of a step is the contract's time convention, so a reason
names a field the way the API's error messages and the docs do.

Two features that say the same thing to an analyst (``amount`` and ``log_amount``) produce the same phrase; such
duplicates are merged into one reason carrying their summed contribution.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from fraud.contracts import PAYSIM
from fraud.contracts.paysim import hour_of_day
from fraud.features import NIGHT_HOURS, RATIO_CAP, FeatureSpec

MIN_CONTRIBUTION: Final = 1e-3
"""Log-odds below which a push is noise (0.1% on the odds), not a reason."""

TIME, TYPE, AMOUNT = PAYSIM.time, "type", "amount"
"""The raw fields the phrases read besides the balances: the time column, the category and the money."""
TYPE_NOUN: Final = PAYSIM.field(TYPE).noun
AMOUNT_NOUN: Final = PAYSIM.field(AMOUNT).noun


@dataclass(frozen=True)
class Reason:
    """One reason: the analyst's sentence, the feature behind it and its pull on the log-odds of fraud."""

    text: str
    feature: str
    contribution: float

    def as_json(self) -> dict[str, Any]:
        return {"reason": self.text, "feature": self.feature, "contribution": round(self.contribution, 4)}


@dataclass(frozen=True)
class Row:
    """What a phrasing function may read about one transaction: its features and raw fields."""

    features: Mapping[str, float]
    raw: Mapping[str, Any]
    spec: FeatureSpec

    def field(self, name: str) -> Any:
        return self.raw.get(name)


Phrase = Callable[[float, Row], str]


def _money(value: float) -> str:
    return f"{value:,.2f}"


def _ratio(value: float) -> str:
    if value >= RATIO_CAP:
        return f"over {RATIO_CAP:,.0f}×"
    if value >= 100:
        return f"{value:,.0f}×"
    if value >= 0.1:
        return f"{value:.1f}×"
    return f"{value:.2g}×"


def _hour(row: Row) -> int | None:
    step = row.field(TIME)
    if step is not None:
        return hour_of_day(int(step))
    hour = row.features.get("hour")
    return None if hour is None else int(hour)


def _type(row: Row) -> str:
    kind = row.field(TYPE)
    if isinstance(kind, str):
        return kind
    for name, value in row.features.items():
        if name.startswith("type_") and value >= 0.5:
            return name.removeprefix("type_")
    return "this type"


def _amount(row: Row, value: float | None = None) -> float:
    amount = row.field(AMOUNT)
    if amount is not None:
        return float(amount)
    if AMOUNT in row.features:
        return float(row.features[AMOUNT])
    return float(value) if value is not None else math.nan


def _hour_of_day(value: float, row: Row) -> str:
    hour = int(value)
    if NIGHT_HOURS[0] <= hour <= NIGHT_HOURS[1]:
        return f"night-time transaction ({hour:02d} h)"  # same words as `night`: one reason, not two
    return f"transaction at {hour:02d} h"


def _day(value: float, row: Row) -> str:
    return f"day {int(value)} of the month"


def _night(value: float, row: Row) -> str:
    hour = _hour(row)
    if value >= 0.5:
        when = f"{hour:02d} h" if hour is not None else f"{NIGHT_HOURS[0]:02d}–{NIGHT_HOURS[1]:02d} h"
        return f"night-time transaction ({when})"
    return f"daytime transaction ({hour:02d} h)" if hour is not None else "daytime transaction"


def _type_flag(kind: str) -> Phrase:
    def phrase(value: float, row: Row) -> str:
        return f"{TYPE_NOUN} {kind}" if value >= 0.5 else f"not a {kind} (type {_type(row)})"

    return phrase


def _amount_value(value: float, row: Row) -> str:
    return f"{AMOUNT_NOUN} {_money(_amount(row, value))}"


def _log_amount(value: float, row: Row) -> str:
    return f"{AMOUNT_NOUN} {_money(_amount(row, math.expm1(value)))}"


def _amount_vs_type(value: float, row: Row) -> str:
    return f"{AMOUNT_NOUN} {_ratio(value)} the usual for {_type(row)}"


def _balance(field: str) -> Phrase:
    noun = PAYSIM.field(field).noun

    def phrase(value: float, row: Row) -> str:
        raw = row.field(field)
        balance = float(raw) if raw is not None else value
        return f"{noun} {_money(balance)} before the transaction"

    return phrase


def _orig_zero(value: float, row: Row) -> str:
    return "origin account empty before the transaction" if value >= 0.5 else "origin account holds funds"


def _dest_zero(value: float, row: Row) -> str:
    return "destination account empty before the transaction" if value >= 0.5 else "destination account holds funds"


def _amount_vs_orig(value: float, row: Row) -> str:
    return f"{AMOUNT_NOUN} {_ratio(value)} the {PAYSIM.field('oldbalanceOrg').noun}"


def _drains(value: float, row: Row) -> str:
    return "amount equals the whole origin balance" if value >= 0.5 else "amount leaves part of the origin balance"


PHRASES: Final[dict[str, Phrase]] = {
    "hour": _hour_of_day,
    "day": _day,
    "night": _night,
    "amount": _amount_value,
    "log_amount": _log_amount,
    "amount_vs_type_median": _amount_vs_type,
    "oldbalanceOrg": _balance("oldbalanceOrg"),
    "oldbalanceDest": _balance("oldbalanceDest"),
    "orig_balance_zero": _orig_zero,
    "dest_balance_zero": _dest_zero,
    "amount_vs_orig_balance": _amount_vs_orig,
    "drains_origin": _drains,
}


def phrase_for(name: str, spec: FeatureSpec) -> Phrase:
    """The phrasing function of a feature; unknown features fall back to the spec's description."""
    if name in PHRASES:
        return PHRASES[name]
    if name.startswith("type_"):
        return _type_flag(name.removeprefix("type_"))
    description = spec.descriptions.get(name, name)

    def fallback(value: float, row: Row) -> str:
        return f"{description}: {value:g}"

    return fallback


class Explainer:
    """Phrases the top reasons of each row; built once per served version (phrasers bound to its features)."""

    def __init__(self, spec: FeatureSpec, top: int = 3) -> None:
        self.spec = spec
        self.top = top
        self.names = spec.names
        self.phrases = [phrase_for(name, spec) for name in spec.names]

    def explain(
        self,
        contributions: np.ndarray,
        features: np.ndarray,
        raw: Mapping[str, Sequence[Any] | np.ndarray],
        rows: Sequence[int] | np.ndarray,
    ) -> list[list[Reason]]:
        """Top reasons of the given rows.

        Args:
            contributions: (m, k + 1) log-odds contributions of the m explained rows (last column = bias).
            features: the full (n, k) feature matrix of the request.
            raw: the request's validated raw columns (length n).
            rows: for each explained row, its index in the request (length m).
        """
        if self.top == 0 or len(rows) == 0:
            return [[] for _ in range(len(rows))]
        index = np.asarray(rows, dtype=np.intp)
        per_feature = np.asarray(contributions, dtype=np.float64)[:, :-1]
        order = np.argsort(-per_feature, axis=1, kind="stable")
        # sorted strongest first, so the features pushing the score up are a prefix of each row's order (NaN last)
        pushing = np.count_nonzero(per_feature > MIN_CONTRIBUTION, axis=1).tolist()
        # Python values once for all rows: numpy scalar access per (row, feature) costs more than the phrasing
        weights, orders, values = per_feature.tolist(), order.tolist(), features[index].tolist()
        positions = index.tolist()
        columns = {
            name: column[index].tolist() if isinstance(column, np.ndarray) else [column[i] for i in positions]
            for name, column in raw.items()
        }
        names, phrases, top = self.names, self.phrases, self.top
        out: list[list[Reason]] = []
        for j, count in enumerate(pushing):
            if not count:
                out.append([])
                continue
            row_values = values[j]
            row = Row(
                features=dict(zip(names, row_values, strict=True)),
                raw={name: column[j] for name, column in columns.items()},
                spec=self.spec,
            )
            found: dict[str, tuple[str, float]] = {}
            row_weights = weights[j]
            for feature in orders[j][:count]:
                text = phrases[feature](row_values[feature], row)
                weight = row_weights[feature]
                if text in found:
                    first, total = found[text]
                    found[text] = (first, total + weight)
                elif len(found) < top:
                    found[text] = (names[feature], weight)
            reasons = [Reason(text, name, weight) for text, (name, weight) in found.items()]
            reasons.sort(key=lambda reason: -reason.contribution)  # merged duplicates may have moved up
            out.append(reasons)
        return out
