"""Request validation without a server: every kind of bad input, and the message that names field and index."""

from __future__ import annotations

import copy
import json
import struct
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kserve.protocol.infer_type import InferInput, InferRequest, RequestedOutput

from fraud.features import DEFINITIONS
from serving.decoding import V1Decoder, V2Decoder
from serving.server import infer_request_from_json
from serving.validation import Contract, RequestError, parse_v1, parse_v2

STRICT_INPUTS = ("step", "type", "amount")
DECISION_TIME_INPUTS = ("step", "type", "amount", "oldbalanceOrg", "oldbalanceDest")
STRICT = Contract.for_inputs(STRICT_INPUTS, max_batch=5, default_reasons="all")
DECISION_TIME = Contract.for_inputs(DECISION_TIME_INPUTS, max_batch=5, default_reasons="all")
GOOD: dict[str, Any] = {
    "step": 3,
    "type": "TRANSFER",
    "amount": 181.0,
    "nameOrig": "C1",
    "nameDest": "C2",
    "oldbalanceOrg": 181.0,
    "oldbalanceDest": 0.0,
}


def body(*instances: dict[str, Any]) -> dict[str, Any]:
    return {"instances": [copy.deepcopy(i) for i in instances]}


def with_field(field: str, value: Any) -> dict[str, Any]:
    instance = dict(GOOD)
    instance[field] = value
    return instance


def without(field: str) -> dict[str, Any]:
    return {k: v for k, v in GOOD.items() if k != field}


def rejects(payload: Any, contract: Contract = STRICT) -> RequestError:
    """parse_v1's error, after checking that the fast decoder leaves the body to it."""
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    assert V1Decoder(contract).decode(raw) is None
    with pytest.raises(RequestError) as caught:
        parse_v1(payload, contract)
    return caught.value


def same_as_parse_v1(payload: dict[str, Any], contract: Contract = STRICT) -> None:
    """The fast decoder accepts a valid body and gives exactly parse_v1's batch."""
    fast = V1Decoder(contract).decode(json.dumps(payload).encode())
    slow = parse_v1(payload, contract)
    assert fast is not None
    assert (fast.rows, fast.reasons, fast.request_id) == (slow.rows, slow.reasons, slow.request_id)
    assert fast.columns.keys() == slow.columns.keys()
    for name, column in slow.columns.items():
        if isinstance(column, np.ndarray):
            assert fast.columns[name].dtype == column.dtype
            np.testing.assert_array_equal(fast.columns[name], column)
        else:
            assert list(fast.columns[name]) == list(column)


def test_a_valid_batch_becomes_the_columns_the_feature_set_reads() -> None:
    batch = parse_v1(body(GOOD, with_field("amount", 5)), STRICT)
    assert batch.rows == 2
    assert set(batch.columns) == set(STRICT_INPUTS)
    assert batch.columns["amount"].dtype == np.float64
    assert batch.columns["amount"].tolist() == [181.0, 5.0]
    assert batch.columns["step"].dtype == np.int64
    assert batch.reasons == "all"
    same_as_parse_v1(body(GOOD, with_field("amount", 5)))
    same_as_parse_v1({**body(GOOD, GOOD), "parameters": {"reasons": "none", "other": 1}}, DECISION_TIME)


def test_unknown_fields_are_ignored_in_v1() -> None:
    batch = parse_v1(body({**GOOD, "transaction_id": "t-1", "isFraud": 1}), STRICT)
    assert batch.rows == 1
    same_as_parse_v1({**body({**GOOD, "transaction_id": "t-1", "isFraud": 1}), "client": "switch-7"})


def test_the_fast_decoder_leaves_cloudevents_and_duplicate_keys_to_parse_v1() -> None:
    # a structured CloudEvent goes to KServe's own route, so the fast path must not take it
    assert V1Decoder(STRICT).decode(json.dumps({**body(GOOD), "specversion": "1.0"}).encode()) is None
    # JSON with a repeated key: orjson keeps the last value, which parse_v1 then judges
    raw = (
        b'{"instances": [{"step": 3, "type": "TRANSFER", "amount": -1, "amount": 5, "nameOrig": "a", "nameDest": "b"}]}'
    )
    assert V1Decoder(STRICT).decode(raw) is None
    assert parse_v1(raw, STRICT).columns["amount"].tolist() == [5.0]


_ANY_JSON = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", "TRANSFER", "CASH_IN", "transfer", "C1", "x" * 257, "3", "1.5"]),
    st.lists(st.integers(), max_size=2),
)
_FIELD_VALUES = {
    "step": st.one_of(st.integers(min_value=0, max_value=1_000_001), _ANY_JSON),
    "type": st.one_of(st.sampled_from(["CASH_IN", "CASH_OUT", "DEBIT", "PAYMENT", "TRANSFER"]), _ANY_JSON),
    "amount": st.one_of(st.floats(min_value=-1.0, max_value=1e12), st.integers(-5, 10**20), _ANY_JSON),
    "nameOrig": st.one_of(st.text(max_size=300), _ANY_JSON),
    "nameDest": st.one_of(st.text(max_size=3), _ANY_JSON),
    "oldbalanceOrg": st.one_of(st.floats(min_value=-1.0, max_value=1e9), _ANY_JSON),
    "oldbalanceDest": st.one_of(st.floats(min_value=0.0, max_value=1e9), _ANY_JSON),
}
_INSTANCES = st.lists(
    st.builds(
        lambda changed, dropped: {k: v for k, v in {**GOOD, **changed}.items() if k not in dropped},
        st.fixed_dictionaries({}, optional=_FIELD_VALUES),
        st.sets(st.sampled_from(sorted(GOOD)), max_size=2),
    ),
    min_size=0,
    max_size=7,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances=_INSTANCES, reasons=st.sampled_from([None, "all", "flagged", "none", "some", 3]))
def test_the_fast_decoder_accepts_exactly_what_parse_v1_accepts(instances: list[dict[str, Any]], reasons: Any) -> None:
    """The fast path never accepts a body parse_v1 refuses, and gives the same batch when both accept."""
    payload: dict[str, Any] = {"instances": instances}
    if reasons is not None:
        payload["parameters"] = {"reasons": reasons}
    for contract in (STRICT, DECISION_TIME):
        fast = V1Decoder(contract).decode(json.dumps(payload).encode())
        try:
            parse_v1(payload, contract)
        except RequestError:
            assert fast is None
        else:
            same_as_parse_v1(payload, contract)


@pytest.mark.parametrize(
    ("instance", "field", "index_problem"),
    [
        (with_field("type", "WIRE"), "type", "unknown transaction type 'WIRE'"),
        (with_field("type", "transfer"), "type", "unknown transaction type"),
        (with_field("amount", -5.0), "amount", "must be >= 0; got -5.0"),
        (with_field("amount", 10**400), "amount", "must be a finite number"),
        (with_field("amount", "181.0"), "amount", "expected a number, got string '181.0'"),
        (with_field("amount", True), "amount", "expected a number, got boolean True"),
        (with_field("amount", None), "amount", "expected a number, got null"),
        (with_field("amount", [1]), "amount", "expected a number, got array"),
        (with_field("step", 1.5), "step", "expected an integer, got number 1.5"),
        (with_field("step", 3.0), "step", "expected an integer, got number 3.0"),
        (with_field("step", "3"), "step", "expected an integer, got string"),
        (with_field("step", False), "step", "expected an integer, got boolean"),
        (with_field("step", 0), "step", "must be an integer from 1 to 1,000,000; got 0"),
        (with_field("step", 2**70), "step", "must be an integer from 1 to 1,000,000"),
        (with_field("nameOrig", ""), "nameOrig", "must be a non-empty account id"),
        (with_field("nameDest", 7), "nameDest", "expected a string, got integer 7"),
        (with_field("nameDest", "x" * 300), "nameDest", "at most 256 characters"),
        (without("step"), "step", "required field is missing"),
        (without("type"), "type", "required field is missing"),
        (without("amount"), "amount", "required field is missing"),
        (without("nameOrig"), "nameOrig", "required field is missing"),
        (without("nameDest"), "nameDest", "required field is missing"),
        # optional for the strict feature set, but checked when sent
        (with_field("oldbalanceOrg", -1), "oldbalanceOrg", "must be >= 0"),
        (with_field("oldbalanceDest", "0"), "oldbalanceDest", "expected a number, got string"),
    ],
)
def test_each_bad_value_names_its_field_and_instance(instance: dict[str, Any], field: str, index_problem: str) -> None:
    # given a valid first transaction and a bad second one
    error = rejects(body(GOOD, instance))
    # then the error names the field, the index (1) and the problem
    assert error.field == field
    assert error.index == 1
    assert str(error).startswith(f"instance 1, field '{field}': ")
    assert index_problem in str(error)
    assert error.as_json() == {"error": str(error), "field": field, "instance": 1}


def test_balances_are_required_only_when_the_feature_set_reads_them() -> None:
    assert parse_v1(body(without("oldbalanceOrg")), STRICT).rows == 1
    error = rejects(body(GOOD, without("oldbalanceOrg")), DECISION_TIME)
    assert (error.field, error.index, error.problem) == ("oldbalanceOrg", 1, "required field is missing")
    batch = parse_v1(body(GOOD), DECISION_TIME)
    assert set(batch.columns) == set(DECISION_TIME_INPUTS)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"instances": []}, "field 'instances': empty batch; send 1 to 5 transactions"),
        ({"instances": [GOOD] * 6}, "batch of 6 transactions exceeds the maximum of 5 per request"),
        ({}, "field 'instances': missing"),
        ({"instances": GOOD}, "field 'instances': must be a list of transactions, got object"),
        ({"instances": None}, "must be a list of transactions, got null"),
        ([GOOD], "request body must be a JSON object"),
        ("text", "malformed JSON"),
        (b'{"instances": [', "malformed JSON"),
        (b"\xff\xfe", "malformed JSON"),
        ({"instances": [GOOD, 7]}, "instance 1: must be a JSON object (one transaction), got integer 7"),
        ({"instances": [GOOD], "parameters": {"reasons": "some"}}, "field 'parameters.reasons': must be one of"),
        ({"instances": [GOOD], "parameters": []}, "field 'parameters': must be an object"),
    ],
)
def test_request_level_problems(payload: Any, message: str) -> None:
    assert message in str(rejects(payload))


def test_bytes_bodies_are_parsed_as_json_whatever_the_content_type() -> None:
    assert (
        parse_v1(
            b'{"instances": [{"step": 1, "type": "CASH_IN", "amount": 1, "nameOrig": "a", "nameDest": "b"}]}', STRICT
        ).rows
        == 1
    )


def test_reasons_parameter() -> None:
    assert parse_v1({**body(GOOD), "parameters": {"reasons": "flagged"}}, STRICT).reasons == "flagged"
    assert parse_v1({**body(GOOD), "parameters": {}}, STRICT).reasons == "all"


# ------------------------------------------------------------------------------------------------------ V2


def tensor(name: str, datatype: str, data: Any, shape: list[int] | None = None) -> InferInput:
    return InferInput(name=name, shape=shape if shape is not None else [len(data)], datatype=datatype, data=data)


def v2_inputs(n: int = 2) -> list[InferInput]:
    return [
        tensor("step", "INT64", [3] * n),
        tensor("type", "BYTES", ["TRANSFER"] * n),
        tensor("amount", "FP64", [181.0] * n),
        tensor("nameOrig", "BYTES", ["C1"] * n),
        tensor("nameDest", "BYTES", ["C2"] * n),
    ]


def v2(inputs: list[InferInput], **kwargs: Any) -> InferRequest:
    return InferRequest(model_name="fraud-detector", infer_inputs=inputs, **kwargs)


def replace(inputs: list[InferInput], new: InferInput) -> list[InferInput]:
    return [new if t.name == new.name else t for t in inputs]


def v2_rejects(request: InferRequest, contract: Contract = STRICT) -> RequestError:
    with pytest.raises(RequestError) as caught:
        parse_v2(request, contract)
    return caught.value


def test_a_valid_v2_request_becomes_columns() -> None:
    batch = parse_v2(v2(v2_inputs(), request_id="r-1"), STRICT)
    assert batch.rows == 2
    assert batch.request_id == "r-1"
    assert batch.columns["amount"].tolist() == [181.0, 181.0]


def test_v2_accepts_int32_fp32_nested_n_by_1_and_grpc_bytes() -> None:
    inputs = replace(v2_inputs(), tensor("step", "INT32", [[3], [4]], shape=[2, 1]))
    inputs = replace(inputs, tensor("amount", "FP32", [1.5, 2.0]))
    inputs = replace(inputs, tensor("type", "BYTES", [b"TRANSFER", b"CASH_OUT"]))
    batch = parse_v2(v2(inputs), STRICT)
    assert batch.columns["step"].tolist() == [3, 4]
    assert list(batch.columns["type"]) == ["TRANSFER", "CASH_OUT"]


def test_v2_binary_tensors_are_decoded_and_checked() -> None:
    amount = InferInput("amount", [2], "FP64")
    amount.set_data_from_numpy(np.array([1.0, -2.0]), binary_data=True)
    error = v2_rejects(v2(replace(v2_inputs(), amount)))
    assert (error.field, error.index) == ("amount", 1)
    broken = InferInput("amount", [3], "FP64")
    broken._raw_data = struct.pack("<d", 1.0)  # one value where the shape promises three
    assert "binary data does not hold 3 FP64 values" in str(v2_rejects(v2(replace(v2_inputs(), broken))))


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (tensor("amount", "INT64", [1, 2]), "amount", "datatype INT64 is not accepted; send FP64 or FP32"),
        (tensor("step", "FP64", [1.0, 2.0]), "step", "datatype FP64 is not accepted; send INT64 or INT32"),
        (tensor("type", "INT64", [1, 2]), "type", "datatype INT64 is not accepted; send BYTES"),
        (tensor("amount", "FP64", [1.0, 2.0], shape=[2, 2]), "amount", "shape [2, 2] is not accepted"),
        (tensor("amount", "FP64", [1.0, 2.0], shape=[1, 2, 1]), "amount", "shape [1, 2, 1] is not accepted"),
        (tensor("amount", "FP64", [1.0, 2.0], shape=[3]), "amount", "shape says 3 values but 'data' holds 2"),
        (tensor("amount", "FP64", "12"), "amount", "'data' must be a list"),
        (tensor("amount", "FP64", [1.0, True]), "amount", "instance 1, input 'amount': expected a number"),
        (tensor("amount", "FP64", [1.0, "2"]), "amount", "expected a number, got string"),
        (tensor("step", "INT64", [1, 2.5]), "step", "expected an integer, got number 2.5"),
        (tensor("type", "BYTES", ["TRANSFER", "WIRE"]), "type", "instance 1, input 'type': unknown transaction type"),
        (tensor("type", "BYTES", [b"TRANSFER", b"\xff"]), "type", "is not valid UTF-8"),
        (tensor("nameOrig", "BYTES", ["a", 5]), "nameOrig", "expected a string, got integer 5"),
        (tensor("amount", "FP64", [[1.0, 2.0]], shape=[2, 1]), "amount", "'data' must be flat"),
    ],
)
def test_each_bad_v2_input_is_named(change: InferInput, field: str, message: str) -> None:
    error = v2_rejects(v2(replace(v2_inputs(), change)))
    assert error.field == field
    assert message in str(error)


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([], "field 'inputs': no inputs"),
        (v2_inputs()[1:], "input 'step': required input is missing"),
        ([*v2_inputs(), tensor("stepp", "INT64", [1, 2])], "input 'stepp': unknown input"),
        ([*v2_inputs(), tensor("step", "INT64", [1, 2])], "input 'step': sent more than once"),
        (replace(v2_inputs(), tensor("step", "INT64", [1, 2, 3])), "must all hold the same number of transactions"),
        (v2_inputs(0), "field 'inputs': empty batch"),
        (v2_inputs(6), "exceeds the maximum of 5 per request"),
    ],
)
def test_v2_request_level_problems(inputs: list[InferInput], message: str) -> None:
    assert message in str(v2_rejects(v2(inputs)))


def test_v2_balances_required_for_decision_time_and_parameters_checked() -> None:
    assert "input 'oldbalanceOrg': required input is missing" in str(v2_rejects(v2(v2_inputs()), DECISION_TIME))
    error = v2_rejects(v2(v2_inputs(), parameters={"reasons": "every"}))
    assert error.field == "parameters.reasons"
    assert parse_v2(v2(v2_inputs(), parameters={"reasons": "none"}), STRICT).reasons == "none"
    request = v2(v2_inputs(), request_outputs=[RequestedOutput("decision")])
    assert parse_v2(request, STRICT).rows == 2


def test_every_feature_set_input_is_an_accepted_field() -> None:
    for definitions in DEFINITIONS.values():
        inputs = tuple(dict.fromkeys(i for d in definitions for i in d.inputs))
        Contract.for_inputs(inputs, max_batch=1, default_reasons="none")


# ------------------------------------------------------------------------------------------ V2 fast decoder


def v2_json(n: int = 2, **top: Any) -> dict[str, Any]:
    """A V2 JSON body with the five always-required inputs, as a client sends it."""
    inputs = [{"name": t.name, "shape": t.shape, "datatype": t.datatype, "data": t.data} for t in v2_inputs(n)]
    return {"inputs": inputs, **top}


def slow_v2(payload: Any, contract: Contract) -> Any:
    """What the server does without the fast decoder: KServe's request (None: KServe's own route) → parse_v2."""
    request = infer_request_from_json(payload, "fraud-detector")
    return None if request is None else parse_v2(request, contract)


def same_as_slow_v2(payload: dict[str, Any], contract: Contract = STRICT) -> None:
    fast = V2Decoder(contract).decode(json.dumps(payload).encode(), "fraud-detector")
    slow = slow_v2(payload, contract)
    assert fast is not None
    assert slow is not None
    assert (fast.batch.rows, fast.batch.reasons, fast.batch.request_id) == (slow.rows, slow.reasons, slow.request_id)
    assert fast.request.id == payload.get("id")
    assert fast.request.parameters == payload.get("parameters")
    assert fast.batch.columns.keys() == slow.columns.keys()
    for name, column in slow.columns.items():
        if isinstance(column, np.ndarray):
            assert fast.batch.columns[name].dtype == column.dtype
            np.testing.assert_array_equal(fast.batch.columns[name], column)
        else:
            assert list(fast.batch.columns[name]) == list(column)


def test_the_v2_fast_decoder_takes_everyday_bodies() -> None:
    same_as_slow_v2(v2_json())
    same_as_slow_v2(v2_json(5, id="r-1", parameters={"reasons": "none", "priority": 2}))
    body = v2_json(3)
    body["inputs"] = body["inputs"][::-1]  # any order of inputs, "name" anywhere in an input
    body["inputs"][0] = {"data": body["inputs"][0]["data"], **body["inputs"][0]}
    same_as_slow_v2(body)
    body = v2_json(2)
    body["inputs"][0].update(datatype="INT32", shape=[2, 1], parameters={"content_type": "np"})
    body["inputs"].append({"name": "oldbalanceOrg", "shape": [2], "datatype": "FP32", "data": [1, 2.5]})
    same_as_slow_v2(body)


@pytest.mark.parametrize(
    "change",
    [
        lambda b: b["inputs"][0].update(data=[[3], [3]], shape=[2, 1]),  # nested: valid, for the slow path
        lambda b: b["inputs"][0].update(datatype="int64"),  # lower case: valid, for the slow path
        lambda b: b.update(outputs=[{"name": "decision"}]),
        lambda b: b.update(parameters={"binary_data_output": True}),
        lambda b: b["inputs"].append(dict(b["inputs"][0])),  # the same input twice
        lambda b: b["inputs"].append({**b["inputs"][0], "name": "stepp"}),
        lambda b: b["inputs"][2].update(data=[181.0, -1.0]),
        lambda b: b["inputs"][2].update(shape=[3]),
        lambda b: b["inputs"][2].update(shape=[]),
        lambda b: b["inputs"][2].update(shape=[2, 2]),
        lambda b: b["inputs"].pop(0),
        lambda b: b.update(parameters={"reasons": "every"}),
        lambda b: b.update(id=7),
    ],
)
def test_the_v2_fast_decoder_leaves_anything_unusual_to_the_slow_path(change: Any) -> None:
    payload = v2_json()
    change(payload)
    assert V2Decoder(STRICT).decode(json.dumps(payload).encode(), "fraud-detector") is None


def test_the_v2_fast_decoder_needs_the_balances_only_when_the_version_reads_them() -> None:
    assert V2Decoder(DECISION_TIME).decode(json.dumps(v2_json()).encode(), "fraud-detector") is None
    body = v2_json()
    body["inputs"] += [
        {"name": name, "shape": [2], "datatype": "FP64", "data": [0.0, 5.0]}
        for name in ("oldbalanceOrg", "oldbalanceDest")
    ]
    same_as_slow_v2(body, DECISION_TIME)
    same_as_slow_v2(body, STRICT)


_V2_DATATYPES = st.sampled_from(["INT64", "INT32", "FP64", "FP32", "BYTES", "int64", "FP16", "BOOL"])
_SHAPES = st.sampled_from(["n", "n1", "n+1", "empty", "n2", "neg"])


@st.composite
def _v2_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """A V2 body near a valid one: inputs changed, dropped, repeated or unknown; odd shapes, datatypes, values."""
    n = draw(st.integers(min_value=0, max_value=7))
    body = v2_json(n)
    if draw(st.booleans()):
        body["inputs"] += [
            {"name": name, "shape": [n], "datatype": "FP64", "data": [1.0] * n}
            for name in ("oldbalanceOrg", "oldbalanceDest")
        ]
    for item in list(body["inputs"]):
        action = draw(st.sampled_from(["keep", "keep", "keep", "values", "datatype", "shape", "drop", "repeat"]))
        if action == "values":
            item["data"] = draw(st.lists(_FIELD_VALUES[item["name"]], min_size=n, max_size=n))
        elif action == "datatype":
            item["datatype"] = draw(_V2_DATATYPES)
        elif action == "shape":
            item["shape"] = {"n": [n], "n1": [n, 1], "n+1": [n + 1], "empty": [], "n2": [n, 2], "neg": [-1]}[
                draw(_SHAPES)
            ]
        elif action == "drop":
            body["inputs"].remove(item)
        elif action == "repeat":
            body["inputs"].append(dict(item))
    if draw(st.booleans()):
        body["inputs"].append({"name": draw(st.sampled_from(["stepp", "isFraud"])), "shape": [n], "datatype": "FP64"})
    top = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "id": st.sampled_from(["r-1", "", None, 5]),
                "parameters": st.sampled_from(
                    [None, {"reasons": "none"}, {"reasons": "some"}, {"binary_data_output": False}, {"x": [1]}]
                ),
                "outputs": st.sampled_from([None, [], [{"name": "decision"}]]),
            },
        )
    )
    return {**body, **top}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=_v2_bodies())
def test_the_v2_fast_decoder_never_accepts_what_the_slow_path_refuses(payload: dict[str, Any]) -> None:
    """Accepted by the fast decoder ⇒ taken by KServe's request model and parse_v2, with the same batch."""
    for contract in (STRICT, DECISION_TIME):
        fast = V2Decoder(contract).decode(json.dumps(payload).encode(), "fraud-detector")
        if fast is None:
            continue
        try:
            slow_v2(payload, contract)
        except RequestError:
            raise AssertionError(f"the fast decoder accepted a body parse_v2 refuses: {payload}") from None
        same_as_slow_v2(payload, contract)
