"""The PaySim mobile-money transaction (Kaggle ``ealaxi/paysim1``), declared once.

Column order and spelling are the published log's header, byte for byte (``oldbalanceOrg`` without the ``i``
included), because the real Kaggle file is checked against it exactly.
"""

from __future__ import annotations

from typing import Final

import pyarrow as pa

from fraud.contracts.model import Field, TransactionContract

HOURS_PER_DAY: Final = 24
PUBLISHED_MAX_STEP: Final = 743
"""Last step of the published log (a 31-day month). The accepted domain is wider (`STEP_RANGE`): generated
months and live traffic run on past it."""
STEP_RANGE: Final = (1, 1_000_000)
"""Hours since the start of the simulation, the data layer's and the API's domain alike."""
TRANSACTION_TYPES: Final[tuple[str, ...]] = ("CASH_IN", "CASH_OUT", "DEBIT", "PAYMENT", "TRANSFER")
"""Every `type` value PaySim emits, sorted; anything else is invalid input."""
MAX_NAME_LENGTH: Final = 256


def _money(name: str, noun: str, description: str, *, decision_time: bool) -> Field:
    return Field(name, "number", pa.float64(), noun, description, decision_time, low=0.0)


def _account(name: str, description: str) -> Field:
    return Field(name, "identifier", pa.string(), "account id", description, True, max_length=MAX_NAME_LENGTH)


def _flag(name: str, noun: str, description: str) -> Field:
    return Field(name, "flag", pa.int8(), noun, description, decision_time=False)


PAYSIM: Final = TransactionContract(
    name="paysim",
    version="paysim-v1",
    fields=(
        Field(
            "step",
            "integer",
            pa.int32(),
            "step",
            "hours since the start of the simulated month (1..743 in the published log)",
            decision_time=True,
            low=STEP_RANGE[0],
            high=STEP_RANGE[1],
        ),
        Field(
            "type",
            "category",
            pa.string(),
            "transaction type",
            "kind of mobile-money operation",
            decision_time=True,
            choices=TRANSACTION_TYPES,
        ),
        _money("amount", "amount", "amount in local currency", decision_time=True),
        _account("nameOrig", "the paying account (C… customer)"),
        _money("oldbalanceOrg", "origin balance", "origin balance before the transaction", decision_time=True),
        _money("newbalanceOrig", "origin balance after", "origin balance after the transaction", decision_time=False),
        _account("nameDest", "the receiving account (C… customer, M… merchant)"),
        _money(
            "oldbalanceDest", "destination balance", "destination balance before the transaction", decision_time=True
        ),
        _money(
            "newbalanceDest",
            "destination balance after",
            "destination balance after the transaction",
            decision_time=False,
        ),
        _flag("isFraud", "fraud label", "1 when the simulator's fraud agent made the transaction"),
        _flag("isFlaggedFraud", "simulator flag", "1 when the simulator's rule flagged it (transfers over 200,000)"),
    ),
    label="isFraud",
    time="step",
    identity=("step", "type", "amount", "nameOrig", "nameDest"),
    feature_sets={
        "strict": ("step", "type", "amount"),
        "decision_time": ("step", "type", "amount", "oldbalanceOrg", "oldbalanceDest"),
    },
    example={
        "step": 3,
        "type": "TRANSFER",
        "amount": 181_000.0,
        "nameOrig": "C1231006815",
        "nameDest": "C1979787155",
        "oldbalanceOrg": 181_000.0,
        "oldbalanceDest": 0.0,
    },
)
"""The PaySim transaction. Known at decision time: step, type, amount, both account ids and both *old*
balances; after it: the new balances, the simulator's flag and the label."""

BALANCE_COLUMNS: Final[tuple[str, ...]] = ("oldbalanceOrg", "newbalanceOrig", "oldbalanceDest", "newbalanceDest")


def hour_of_day(step: int) -> int:
    """Hour of day for a step, PaySim's convention (``step % 24``; step 24 is hour 0 of day 1)."""
    return step % HOURS_PER_DAY


def day_of_month(step: int) -> int:
    """Day of the month for a step, 1-based (steps 1..24 are day 1)."""
    return (step - 1) // HOURS_PER_DAY + 1
