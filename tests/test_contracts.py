"""The PaySim transaction contract: what it declares, what it refuses to declare, and that the layers obey it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pyarrow as pa
import pytest

from fraud import schema
from fraud.contracts import PAYSIM, Field, TransactionContract
from fraud.data.adapters import PaySimAdapter, get_adapter
from fraud.data.readers import validated_batches
from fraud.errors import DataValidationError
from samples import PAYSIM_STEP1

PUBLISHED_HEADER = (
    "step,type,amount,nameOrig,oldbalanceOrg,newbalanceOrig,nameDest,oldbalanceDest,newbalanceDest,isFraud,"
    "isFlaggedFraud"
)


def test_paysim_declares_the_published_header_and_canonical_types() -> None:
    assert ",".join(PAYSIM.columns) == PUBLISHED_HEADER
    assert PAYSIM_STEP1.read_text().splitlines()[0] == PUBLISHED_HEADER
    types = {f.name: f.type for f in PAYSIM.arrow_schema}
    assert types["step"] == pa.int32()
    assert types["amount"] == pa.float64()
    assert types["isFraud"] == pa.int8()
    assert PAYSIM.arrow_schema.metadata == {b"schema_version": PAYSIM.version.encode()}
    assert all(not f.nullable for f in PAYSIM.arrow_schema)


def test_only_pre_transaction_fields_are_decision_time() -> None:
    assert set(PAYSIM.post_transaction_names) == {"newbalanceOrig", "newbalanceDest", "isFraud", "isFlaggedFraud"}
    assert PAYSIM.decision_time_names[: len(PAYSIM.identity)] == PAYSIM.identity
    for feature_set, inputs in PAYSIM.feature_sets.items():
        assert set(inputs) <= set(PAYSIM.decision_time_names), feature_set
    assert PAYSIM.required_for(PAYSIM.inputs_for("strict")) == frozenset(PAYSIM.identity)
    assert PAYSIM.required_for(PAYSIM.inputs_for("decision_time")) == frozenset(PAYSIM.decision_time_names)
    with pytest.raises(ValueError, match="unknown feature set 'balances'; choose one of strict, decision_time"):
        PAYSIM.inputs_for("balances")


def test_the_historical_schema_module_is_a_view_of_the_contract() -> None:
    assert PAYSIM.columns == schema.COLUMNS
    assert schema.ARROW_SCHEMA is PAYSIM.arrow_schema
    assert PAYSIM.field("type").choices == schema.TRANSACTION_TYPES
    assert PAYSIM.decision_time_names == schema.DECISION_TIME_FIELDS
    assert PAYSIM.label == schema.LABEL


def _with_field(contract: TransactionContract, name: str, **changes: object) -> TransactionContract:
    fields = tuple(dataclasses.replace(f, **changes) if f.name == name else f for f in contract.fields)  # type: ignore[arg-type]
    return dataclasses.replace(contract, fields=fields)


@pytest.mark.parametrize(
    ("build", "problem"),
    [
        (lambda: _with_field(PAYSIM, "isFraud", decision_time=True), "label 'isFraud' cannot be known at decision"),
        (
            lambda: dataclasses.replace(PAYSIM, feature_sets={"leaky": ("amount", "newbalanceOrig")}),
            r"leaky lists fields not known at decision time: \['newbalanceOrig'\]",
        ),
        (lambda: dataclasses.replace(PAYSIM, label="is_fraud"), "label column 'is_fraud' is not a field"),
        (lambda: dataclasses.replace(PAYSIM, fields=(*PAYSIM.fields, PAYSIM.fields[0])), "'step'] more than once"),
        (lambda: _with_field(PAYSIM, "type", choices=("TRANSFER", "CASH_IN")), "must be sorted"),
        (lambda: _with_field(PAYSIM, "step", high=None), "integer field 'step' needs both bounds"),
        (lambda: dataclasses.replace(PAYSIM, example={"step": 1}), "example must carry exactly"),
    ],
)
def test_a_contract_refuses_an_inconsistent_declaration(build: object, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        build()  # type: ignore[operator]


def test_the_file_adapter_checks_what_the_contract_declares(tmp_path: Path) -> None:
    # given an adapter whose contract narrows the step range to the published month, the same file now fails
    month = _with_field(PAYSIM, "step", high=24)

    class OneDay(PaySimAdapter):
        contract = month

    rows = PAYSIM_STEP1.read_text().splitlines()
    path = tmp_path / "late.csv"
    path.write_text("\n".join([rows[0], rows[1], rows[2].replace("1,", "25,", 1)]) + "\n")
    assert sum(b.num_rows for b in validated_batches(path, get_adapter("paysim"))) == 2
    with pytest.raises(DataValidationError, match=r"row 2, column 'step': 25 is outside 1\.\.24"):
        list(validated_batches(path, OneDay()))


def test_field_kinds_need_their_domains() -> None:
    with pytest.raises(ValueError, match="identifier field 'x' needs a maximum length"):
        Field("x", "identifier", pa.string(), "x", "x", True)
    with pytest.raises(ValueError, match="number field 'x' needs a lower bound"):
        Field("x", "number", pa.float64(), "x", "x", True)
