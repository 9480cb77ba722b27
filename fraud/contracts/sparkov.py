"""The Sparkov credit-card transaction (Kaggle ``kartik2112/fraud-detection``, ``fraudTrain.csv``/``fraudTest.csv``),
declared once; the data layer reads and validates its files (adapter ``sparkov``). No feature set reads it yet,
so it is not served: that is the third piece of adding a dataset (`fraud.contracts` lists what it needs).

The published files carry one more column before these, an unnamed row index, which the adapter drops.
"""

from __future__ import annotations

from typing import Final

import pyarrow as pa

from fraud.contracts.model import Field, TransactionContract

CATEGORIES: Final[tuple[str, ...]] = (
    "entertainment",
    "food_dining",
    "gas_transport",
    "grocery_net",
    "grocery_pos",
    "health_fitness",
    "home",
    "kids_pets",
    "misc_net",
    "misc_pos",
    "personal_care",
    "shopping_net",
    "shopping_pos",
    "travel",
)
"""Every merchant category of the two published files, sorted."""
MAX_TEXT_LENGTH: Final = 256
UNIX_TIME_RANGE: Final = (0, 4_102_444_800)
"""Seconds since 1970 up to 2100. The files' ``unix_time`` runs seven years behind their dates (2012–2013 for
2019–2020), as the generator wrote it; it is taken as published."""


def _text(name: str, noun: str, description: str, max_length: int = MAX_TEXT_LENGTH) -> Field:
    return Field(name, "identifier", pa.string(), noun, description, True, max_length=max_length)


def _degrees(name: str, noun: str, description: str, limit: float) -> Field:
    return Field(name, "number", pa.float64(), noun, description, True, low=-limit, high=limit)


SPARKOV: Final = TransactionContract(
    name="sparkov",
    version="sparkov-v1",
    fields=(
        Field(
            "trans_date_trans_time",
            "timestamp",
            pa.timestamp("s"),
            "transaction time",
            "local date and time of the card transaction",
            True,
        ),
        _text("cc_num", "card number", "the paying card (digits, kept as text: an id, not a quantity)", 19),
        _text("merchant", "merchant", "the merchant's name"),
        Field("category", "category", pa.string(), "merchant category", "kind of merchant", True, choices=CATEGORIES),
        Field("amt", "number", pa.float64(), "amount", "amount in US dollars", True, low=0.0),
        _text("first", "first name", "card holder's first name"),
        _text("last", "last name", "card holder's last name"),
        Field("gender", "category", pa.string(), "gender", "card holder's gender", True, choices=("F", "M")),
        _text("street", "street", "card holder's street address"),
        _text("city", "city", "card holder's city"),
        _text("state", "state", "card holder's US state (two letters)", 2),
        _text("zip", "zip code", "card holder's ZIP code (leading zeros lost in the published files)", 10),
        _degrees("lat", "latitude", "card holder's latitude", 90.0),
        _degrees("long", "longitude", "card holder's longitude", 180.0),
        Field(
            "city_pop",
            "integer",
            pa.int64(),
            "city population",
            "population of the card holder's city",
            True,
            low=0,
            high=100_000_000,
        ),
        _text("job", "job", "card holder's occupation"),
        Field("dob", "timestamp", pa.date32(), "date of birth", "card holder's date of birth", True),
        _text("trans_num", "transaction id", "the transaction's unique id (32 hex digits)", 64),
        Field(
            "unix_time",
            "integer",
            pa.int64(),
            "unix time",
            "seconds since 1970 (as the generator wrote them)",
            True,
            low=UNIX_TIME_RANGE[0],
            high=UNIX_TIME_RANGE[1],
        ),
        _degrees("merch_lat", "merchant latitude", "the merchant's latitude", 90.0),
        _degrees("merch_long", "merchant longitude", "the merchant's longitude", 180.0),
        Field("is_fraud", "flag", pa.int8(), "fraud label", "1 when the generator's fraud profile made it", False),
    ),
    label="is_fraud",
    time="unix_time",
    identity=("trans_num", "cc_num", "merchant", "category", "amt", "unix_time"),
    feature_sets={},
)
"""A Sparkov card transaction: everything but the label is known when the card is authorised."""
