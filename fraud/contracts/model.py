"""The vocabulary of a transaction contract: a field (name, kind, stored type, domain, when it is known) and the
contract that lists a dataset's fields, its label and time columns and what each feature set reads.

The classes are data only. Each consumer (file adapter, API validation, msgspec decoder, pyfunc signature,
feature function, reasons) translates a field's *kind* and domain into its own terms, so a rule such as the step
range is written once here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import pyarrow as pa

FieldKind = Literal["integer", "number", "category", "identifier", "flag", "timestamp"]
"""How a field's values behave, whatever the wire format:

- ``integer``: whole number within ``low``..``high`` (both inclusive);
- ``number``: finite real number, at least ``low`` (and at most ``high`` when set);
- ``category``: text, one of ``choices``;
- ``identifier``: non-empty text of at most ``max_length`` characters (an account id, a card number);
- ``flag``: 0 or 1 (labels and the dataset's own flags);
- ``timestamp``: a calendar date (``arrow_type`` date32, text ``YYYY-MM-DD``) or a time of day on one
  (timestamp[s], text ``YYYY-MM-DD HH:MM:SS``), without a time zone. Files only so far: the API, the fast decoder
  and the pyfunc signature have no branch for it yet (a served contract with one is refused when it is loaded).
"""


@dataclass(frozen=True)
class Field:
    """One column of a transaction: its type, its domain, and whether it is known when the decision is made."""

    name: str
    kind: FieldKind
    arrow_type: pa.DataType
    """The canonical stored type (Parquet/Arrow) of a validated dataset."""
    noun: str
    """What one value is called in a sentence ("transaction type", "origin balance"): error messages and reasons."""
    description: str
    decision_time: bool
    """True when the value is known before the transaction posts; only these may be served or read by features."""
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    max_length: int | None = None

    def __post_init__(self) -> None:
        if self.kind == "integer" and (self.low is None or self.high is None):
            raise ValueError(f"integer field '{self.name}' needs both bounds")
        if self.kind == "number" and self.low is None:
            raise ValueError(f"number field '{self.name}' needs a lower bound")
        if self.kind == "category" and not self.choices:
            raise ValueError(f"category field '{self.name}' needs its choices")
        if self.kind == "category" and tuple(sorted(self.choices)) != self.choices:
            raise ValueError(f"the choices of '{self.name}' must be sorted (category codes are their positions)")
        if self.kind == "identifier" and self.max_length is None:
            raise ValueError(f"identifier field '{self.name}' needs a maximum length")
        if self.kind == "timestamp" and not (
            pa.types.is_date32(self.arrow_type) or self.arrow_type == pa.timestamp("s")
        ):
            raise ValueError(f"timestamp field '{self.name}' is stored as date32 or timestamp[s]")

    @property
    def int_range(self) -> tuple[int, int]:
        """``(low, high)`` of an integer field, as ints."""
        assert self.kind == "integer" and self.low is not None and self.high is not None
        return int(self.low), int(self.high)


@dataclass(frozen=True)
class TransactionContract:
    """A dataset's transaction, declared once: every consumer derives its checks and types from this object."""

    name: str
    version: str
    """Bumped whenever a field, type or domain changes; stored in every data manifest and Arrow schema."""
    fields: tuple[Field, ...]
    """In the order (and spelling) of the published files' header."""
    label: str
    time: str
    """The column that orders transactions in time (splits, drift windows)."""
    identity: tuple[str, ...]
    """Decision-time fields every scoring request must carry, whatever the feature set reads."""
    feature_sets: Mapping[str, tuple[str, ...]]
    """Feature set name → the decision-time fields its features read, in the order the feature spec stores them."""
    example: Mapping[str, Any] = field(default_factory=dict)
    """One valid decision-time transaction (docs, smoke tests, warm-up requests)."""

    def __post_init__(self) -> None:
        names = [f.name for f in self.fields]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"contract '{self.name}' declares {duplicated} more than once")
        for role, name in (("label", self.label), ("time", self.time)):
            if name not in names:
                raise ValueError(f"contract '{self.name}': {role} column '{name}' is not a field")
        if self.by_name[self.label].decision_time:
            raise ValueError(f"contract '{self.name}': the label '{self.label}' cannot be known at decision time")
        decision = {f.name for f in self.fields if f.decision_time}
        for what, fields in (("identity", self.identity), *self.feature_sets.items()):
            outside = [n for n in fields if n not in decision]
            if outside:
                raise ValueError(f"contract '{self.name}': {what} lists fields not known at decision time: {outside}")
        if self.example and set(self.example) != decision:
            raise ValueError(f"contract '{self.name}': the example must carry exactly the decision-time fields")

    @cached_property
    def by_name(self) -> Mapping[str, Field]:
        return {f.name: f for f in self.fields}

    def field(self, name: str) -> Field:
        """The field called ``name``; KeyError names the contract when there is none."""
        try:
            return self.by_name[name]
        except KeyError:
            raise KeyError(f"contract '{self.name}' has no field '{name}'") from None

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @cached_property
    def decision_time_fields(self) -> tuple[Field, ...]:
        """The fields a scoring request may carry: the identity first, then the others in header order (the order
        of API checks, V2 metadata and the pyfunc signature)."""
        rest = [f for f in self.fields if f.decision_time and f.name not in self.identity]
        return (*(self.by_name[name] for name in self.identity), *rest)

    @property
    def decision_time_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.decision_time_fields)

    @property
    def post_transaction_names(self) -> tuple[str, ...]:
        """Known only after the fact: no feature may ever read these."""
        return tuple(f.name for f in self.fields if not f.decision_time)

    @cached_property
    def arrow_schema(self) -> pa.Schema:
        """The canonical in-memory and Parquet layout of a validated dataset (version in the metadata)."""
        return pa.schema(
            [pa.field(f.name, f.arrow_type, nullable=False) for f in self.fields],
            metadata={"schema_version": self.version},
        )

    def inputs_for(self, feature_set: str) -> tuple[str, ...]:
        """The fields a feature set reads; ValueError names the known sets for an unknown one."""
        try:
            return self.feature_sets[feature_set]
        except KeyError:
            known = ", ".join(self.feature_sets)
            raise ValueError(f"unknown feature set '{feature_set}'; choose one of {known}") from None

    def required_for(self, inputs: tuple[str, ...] | list[str]) -> frozenset[str]:
        """What a scoring request must carry for a model reading ``inputs``: the identity fields and the inputs."""
        return frozenset(self.identity).union(inputs)
