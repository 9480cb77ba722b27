"""The feature function: no leakage, identical on one row and on a batch, the spec is data."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from fraud import schema
from fraud.data.adapters import get_adapter
from fraud.data.readers import validated_batches
from fraud.errors import DataValidationError
from fraud.features import (
    DEFINITIONS,
    FEATURE_SETS,
    FORBIDDEN_INPUTS,
    FeatureSpec,
    build_features,
    fit_spec,
    make_spec,
)
from samples import PAYSIM_STEPS1TO9

SAMPLE = PAYSIM_STEPS1TO9


@pytest.fixture(scope="module")
def sample() -> pa.Table:
    return pa.Table.from_batches(list(validated_batches(SAMPLE, get_adapter("paysim"))))


@pytest.mark.parametrize("feature_set", FEATURE_SETS)
def test_no_post_transaction_column_or_label_reaches_any_feature(sample: pa.Table, feature_set: str) -> None:
    spec = fit_spec(sample, feature_set)  # type: ignore[arg-type]
    assert FORBIDDEN_INPUTS.isdisjoint(spec.inputs)
    # Scrambling every forbidden column must leave the matrix bit-for-bit unchanged: they are never read.
    rng = np.random.default_rng(0)
    scrambled = sample
    for name in FORBIDDEN_INPUTS:
        index = scrambled.schema.get_field_index(name)
        values = scrambled[name].to_numpy()
        scrambled = scrambled.set_column(
            index, name, pa.array(rng.permutation(values)).cast(sample.schema.field(name).type)
        )
    assert np.array_equal(build_features(sample, spec), build_features(scrambled, spec))
    # And they are not even needed: a table without them builds the same matrix.
    assert np.array_equal(
        build_features(sample.drop_columns(list(FORBIDDEN_INPUTS)), spec), build_features(sample, spec)
    )


def test_strict_set_reads_no_balance_and_no_id(sample: pa.Table) -> None:
    spec = fit_spec(sample, "strict")
    assert set(spec.inputs) == {"step", "type", "amount"}
    assert not any("balance" in name.lower() for name in spec.names)


def test_a_spec_that_reads_the_label_is_refused() -> None:
    spec = make_spec("strict", dict.fromkeys(schema.TRANSACTION_TYPES, 1.0))
    with pytest.raises(ValueError, match="post-transaction"):
        FeatureSpec(**{**spec.__dict__, "inputs": (*spec.inputs, "newbalanceOrig")})


@pytest.mark.parametrize("feature_set", FEATURE_SETS)
def test_one_row_path_equals_batch_path(sample: pa.Table, feature_set: str) -> None:
    spec = fit_spec(sample, feature_set)  # type: ignore[arg-type]
    batch = build_features(sample, spec)
    rows = sample.to_pylist()
    for index in (0, 2, 3, 251, 970, len(rows) - 1):
        # the serving path: plain Python values from a JSON request, one transaction
        one = build_features({name: [rows[index][name]] for name in spec.inputs}, spec)
        assert np.array_equal(one[0], batch[index])
    # numpy columns (the pyfunc path) give the same matrix too
    columns = {name: sample[name].to_numpy(zero_copy_only=False) for name in spec.inputs}
    assert np.array_equal(build_features(columns, spec), batch)


def test_feature_values_mean_what_they_say(sample: pa.Table) -> None:
    spec = fit_spec(sample, "decision_time")
    row = {"step": [27], "type": ["TRANSFER"], "amount": [1000.0], "oldbalanceOrg": [1000.0], "oldbalanceDest": [0.0]}
    x = dict(zip(spec.names, build_features(row, spec)[0], strict=True))
    assert (x["hour"], x["day"], x["night"]) == (3, 2, 1)
    assert x["type_TRANSFER"] == 1 and x["type_CASH_OUT"] == 0
    assert x["amount_vs_type_median"] == pytest.approx(1000.0 / spec.type_median_amount["TRANSFER"], rel=1e-6)
    assert (x["drains_origin"], x["dest_balance_zero"], x["amount_vs_orig_balance"]) == (1, 1, 1)


def test_spec_is_fitted_on_legitimate_training_rows_and_round_trips(sample: pa.Table) -> None:
    spec = fit_spec(sample, "strict")
    legit_transfers = sample.filter(pc.and_(pc.equal(sample["type"], "TRANSFER"), pc.equal(sample["isFraud"], 0)))
    exact = float(np.median(legit_transfers["amount"].to_numpy()))
    assert spec.type_median_amount["TRANSFER"] == pytest.approx(exact, rel=0.02)
    again = FeatureSpec.from_json(spec.to_json())
    assert again == spec
    assert np.array_equal(build_features(sample, again), build_features(sample, spec))
    assert spec.names == tuple(d.name for d in DEFINITIONS["strict"])


def test_unknown_type_and_missing_field_are_named() -> None:
    spec = make_spec("strict", dict.fromkeys(schema.TRANSACTION_TYPES, 1.0))
    with pytest.raises(DataValidationError, match="unknown type 'BITCOIN'") as caught:
        build_features({"step": [1, 2], "type": ["PAYMENT", "BITCOIN"], "amount": [1.0, 2.0]}, spec)
    assert caught.value.row == 1
    with pytest.raises(DataValidationError, match="column 'amount'"):
        build_features({"step": [1], "type": ["PAYMENT"]}, spec)
    arrow = pa.table({"step": [1], "type": ["WIRE"], "amount": [1.0]})
    with pytest.raises(DataValidationError, match="unknown type 'WIRE'"):
        build_features(arrow, spec)
