"""Strict request parsing: V1 instances and V2 tensors in, validated columns out, or a 400 that names the problem.

A payment switch that sends a malformed transaction must learn what is wrong with it, not get a 500 or, worse, a
score computed from a coerced value. Every check here raises `RequestError` (a KServe ``InvalidInput``, so REST
answers 400 and gRPC ``INVALID_ARGUMENT``) whose message names the field and the 0-based instance index, e.g.
``instance 3, field 'amount': must be >= 0; got -5.0``.

The rules, the same for both protocols, are the PaySim contract's (`fraud.contracts.PAYSIM`, declared once):

- ``step``: integer (JSON integer, V2 INT64/INT32), within the contract's step range (1 … 1,000,000);
- ``type``: string, one of the contract's transaction types;
- ``amount``, ``oldbalanceOrg``, ``oldbalanceDest``: number (JSON number, V2 FP64/FP32), finite and >= 0;
- ``nameOrig``, ``nameDest``: non-empty string of at most 256 characters;
- the contract's identity fields (``step``, ``type``, ``amount``, ``nameOrig``, ``nameDest``) are always
  required; the balances are required only when the served feature set reads them, and checked whenever sent;
- a boolean is not a number and a numeric string is not a number; ``null`` is not a value;
- 1 … ``max_batch`` transactions per request;
- V1 ignores fields it does not know (clients attach their own ids); V2 refuses unknown input names, because a
  tensor the model does not declare is almost always a misspelt field.

Each rule is the translation of a field's contract *kind* (integer, number, category, identifier) and domain;
nothing here names a PaySim field.

These functions are the slow path and the reference: they decode with orjson and check column-wise (one pass
to gather each field, a set of the Python types in it, numpy for ranges), and they find and name every problem.
The REST fast path (`serving.decoding`) decodes the everyday bodies with msgspec under the same rules and hands
anything it does not accept to these, so every error message comes from here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from typing import Any, Final, Literal

import numpy as np
import orjson
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferRequest

from fraud.contracts import PAYSIM, Field, FieldKind

ReasonsMode = Literal["all", "flagged", "none"]
REASONS_MODES: Final[tuple[ReasonsMode, ...]] = ("all", "flagged", "none")

FIELDS: Final[dict[str, Field]] = {f.name: f for f in PAYSIM.decision_time_fields}
"""What a request may carry: the contract's decision-time fields, identity first (the order of checks)."""
FIELD_KINDS: Final[dict[str, FieldKind]] = {name: f.kind for name, f in FIELDS.items()}
ALWAYS_REQUIRED: Final[tuple[str, ...]] = PAYSIM.identity
"""Required whatever the feature set: the decision-time identity of a transaction."""
EXAMPLE_TRANSACTION: Final[dict[str, Any]] = dict(PAYSIM.example)
"""A V1 instance with every field (docs, smoke tests, warm-up): a 03 h TRANSFER that empties its origin."""

V2_DATATYPES: Final[dict[FieldKind, tuple[str, ...]]] = {
    "integer": ("INT64", "INT32"),
    "number": ("FP64", "FP32"),
    "category": ("BYTES",),
    "identifier": ("BYTES",),
}
"""The V2 datatypes a field of each kind may be sent as (the first is the one model metadata declares)."""
_UNSERVABLE: Final = [f"{name} ({f.kind})" for name, f in FIELDS.items() if f.kind not in V2_DATATYPES]
if _UNSERVABLE:  # a contract kind the API, the fast decoder and the pyfunc signature have no branch for yet
    raise RuntimeError(f"the served contract has fields of kinds the API cannot check: {', '.join(_UNSERVABLE)}")
_NUMPY_DTYPES: Final[dict[str, type[np.generic]]] = {
    "INT64": np.int64,
    "INT32": np.int32,
    "FP64": np.float64,
    "FP32": np.float32,
}
_JSON_TYPE_NAMES: Final[dict[type, str]] = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
    type(None): "null",
    bytes: "bytes",
}


class _Missing:
    """Marks a field absent from an instance (distinct from an explicit ``null``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


MISSING: Final = _Missing()


class RequestError(InvalidInput):  # type: ignore[misc]
    """Invalid input: HTTP 400 / gRPC INVALID_ARGUMENT, with the field and instance index it concerns."""

    def __init__(self, problem: str, *, field: str | None = None, index: int | None = None, label: str = "field"):
        self.problem = problem
        self.field = field
        self.index = index
        where: list[str] = []
        if index is not None:
            where.append(f"instance {index}")
        if field is not None:
            where.append(f"{label} '{field}'")
        super().__init__(f"{', '.join(where)}: {problem}" if where else problem)

    def as_json(self) -> dict[str, Any]:
        """The error body: KServe's ``{"error": message}`` plus the field and index for programs."""
        body: dict[str, Any] = {"error": str(self)}
        if self.field is not None:
            body["field"] = self.field
        if self.index is not None:
            body["instance"] = self.index
        return body


@dataclass(frozen=True)
class Batch:
    """A validated request: the columns the feature function reads, its size and the reasons wanted."""

    columns: dict[str, Any]
    rows: int
    reasons: ReasonsMode
    request_id: str | None = None


@dataclass(frozen=True)
class Contract:
    """What the served model needs from a request (fixed once the model is loaded)."""

    needed: tuple[str, ...]
    """Fields the feature spec reads: kept as columns."""
    required: frozenset[str]
    max_batch: int
    default_reasons: ReasonsMode

    @classmethod
    def for_inputs(cls, inputs: Sequence[str], max_batch: int, default_reasons: ReasonsMode) -> Contract:
        unknown = [name for name in inputs if name not in FIELD_KINDS]
        if unknown:
            raise ValueError(f"the feature spec reads fields the API does not accept: {unknown}")
        return cls(
            needed=tuple(inputs),
            required=PAYSIM.required_for(tuple(inputs)),
            max_batch=max_batch,
            default_reasons=default_reasons,
        )


def _json_type(value: object) -> str:
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _got(value: object) -> str:
    return f"got {_json_type(value)} {_show(value)}" if value is not None else "got null"


# --------------------------------------------------------------------------------------------- column checks


class _Column:
    """Checks one field's values against its contract; ``label`` is "field" (V1) or "input" (V2) in messages."""

    def __init__(self, field: Field, label: str) -> None:
        self.field = field
        self.name = field.name
        self.label = label
        self.choices = frozenset(field.choices)

    def fail(self, problem: str, index: int | None) -> RequestError:
        return RequestError(problem, field=self.name, index=index, label=self.label)

    def first_not_of(self, values: Sequence[object], allowed: tuple[type, ...], expected: str) -> RequestError:
        for i, value in enumerate(values):
            if type(value) not in allowed:
                if value is MISSING:
                    return self.fail("required field is missing", i)
                return self.fail(f"expected {expected}, {_got(value)}", i)
        raise AssertionError("no offending value")  # pragma: no cover - callers checked the set of types first

    def integers(self, values: Sequence[object] | np.ndarray) -> np.ndarray:
        low, high = self.field.int_range
        if isinstance(values, np.ndarray):
            array = values.astype(np.int64, copy=False)
        else:
            if not set(map(type, values)) <= {int}:
                raise self.first_not_of(values, (int,), "an integer")
            try:
                array = np.array(values, dtype=np.int64)
            except OverflowError:  # beyond int64: certainly out of range
                array = np.array([v if low <= v <= high else high + 1 for v in values], dtype=np.int64)  # type: ignore[operator]
        bad = np.flatnonzero((array < low) | (array > high))
        if bad.size:
            i = int(bad[0])
            shown = int(array[i]) if isinstance(values, np.ndarray) else values[i]
            raise self.fail(f"must be an integer from {low:,} to {high:,}; got {_show(shown)}", i)
        return array

    def numbers(self, values: Sequence[object] | np.ndarray) -> np.ndarray:
        if isinstance(values, np.ndarray):
            array = values.astype(np.float64, copy=False)
        else:
            if not set(map(type, values)) <= {int, float}:
                raise self.first_not_of(values, (int, float), "a number")
            try:
                array = np.array(values, dtype=np.float64)
            except OverflowError:
                for i, value in enumerate(values):
                    try:
                        float(value)  # type: ignore[arg-type]
                    except OverflowError:
                        raise self.fail(f"must be a finite number; got {_show(value)}", i) from None
                raise
        finite = np.isfinite(array)
        if not finite.all():
            i = int(np.flatnonzero(~finite)[0])
            raise self.fail(f"must be a finite number; got {array[i]!r}", i)
        low, high = self.field.low, self.field.high
        if low is not None:
            below = np.flatnonzero(array < low)
            if below.size:
                i = int(below[0])
                raise self.fail(f"must be >= {low:g}; got {float(array[i])!r}", i)
        if high is not None:
            above = np.flatnonzero(array > high)
            if above.size:
                i = int(above[0])
                raise self.fail(f"must be <= {high:g}; got {float(array[i])!r}", i)
        return array

    def strings(self, values: Sequence[object]) -> Sequence[str]:
        if not set(map(type, values)) <= {str}:
            raise self.first_not_of(values, (str,), "a string")
        return values  # type: ignore[return-value]

    def categories(self, values: Sequence[object]) -> Sequence[str]:
        strings = self.strings(values)
        if not set(strings) <= self.choices:
            for i, value in enumerate(strings):
                if value not in self.choices:
                    expected = ", ".join(self.field.choices)
                    raise self.fail(f"unknown {self.field.noun} {_show(value)}; expected one of {expected}", i)
        return strings

    def identifiers(self, values: Sequence[object]) -> Sequence[str]:
        strings = self.strings(values)
        limit = self.field.max_length
        assert limit is not None  # an identifier field always declares one
        lengths = np.fromiter(map(len, strings), dtype=np.int64, count=len(strings))
        bad = np.flatnonzero((lengths == 0) | (lengths > limit))
        if bad.size:
            i = int(bad[0])
            raise self.fail(
                f"must be a non-empty {self.field.noun} of at most {limit} characters; got {_show(strings[i])}", i
            )
        return strings

    def check(self, values: Sequence[object] | np.ndarray) -> Any:
        kind = self.field.kind
        if kind == "integer":
            return self.integers(values)
        if kind == "number":
            return self.numbers(values)
        sequence: Sequence[object] = values.tolist() if isinstance(values, np.ndarray) else values
        if kind == "category":
            return self.categories(sequence)
        return self.identifiers(sequence)


_V1_COLUMNS: Final = {name: _Column(field, "field") for name, field in FIELDS.items()}
_V2_COLUMNS: Final = {name: _Column(field, "input") for name, field in FIELDS.items()}

# ----------------------------------------------------------------------------------------------------- shared


def reasons_mode(parameters: object, default: ReasonsMode) -> ReasonsMode:
    """The ``reasons`` request parameter (``all``/``flagged``/``none``), else the server default."""
    if parameters is None:
        return default
    if not isinstance(parameters, Mapping):
        raise RequestError(f"must be an object of request parameters, {_got(parameters)}", field="parameters")
    if "reasons" not in parameters:
        return default
    value = parameters["reasons"]
    value = getattr(value, "string_param", value)  # gRPC InferParameter
    if value not in REASONS_MODES:
        raise RequestError(f"must be one of {', '.join(REASONS_MODES)}; {_got(value)}", field="parameters.reasons")
    return value  # type: ignore[no-any-return]


def _check_size(rows: int, contract: Contract, what: str) -> None:
    if rows == 0:
        raise RequestError(f"empty batch; send 1 to {contract.max_batch:,} transactions", field=what)
    if rows > contract.max_batch:
        raise RequestError(
            f"batch of {rows:,} transactions exceeds the maximum of {contract.max_batch:,} per request "
            "(FRAUD_SERVE_MAX_BATCH); split it",
            field=what,
        )


# --------------------------------------------------------------------------------------------------------- V1


def _v1_body(payload: object) -> dict[str, Any]:
    """The request body as a JSON object; bytes (KServe passes the raw body through when the Content-Type is
    not JSON, as with ``curl -d``) are parsed all the same: the content decides, not the header."""
    if isinstance(payload, bytes | bytearray | memoryview | str):
        try:
            payload = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise RequestError(f"malformed JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise RequestError(
            f'request body must be a JSON object like {{"instances": [{{transaction}}, ...]}}; {_got(payload)}'
        )
    return payload


def parse_v1(payload: object, contract: Contract, request_id: str | None = None) -> Batch:
    """Validate a V1 body ``{"instances": [{transaction}, …], "parameters": {…}}`` into columns.

    Raises:
        RequestError: naming the field and instance index of the first problem found.
    """
    payload = _v1_body(payload)
    instances = payload.get("instances", MISSING)
    if instances is MISSING:
        raise RequestError('missing; send {"instances": [{transaction}, ...]}', field="instances")
    if not isinstance(instances, list):
        raise RequestError(f"must be a list of transactions, {_got(instances)}", field="instances")
    _check_size(len(instances), contract, "instances")
    if not set(map(type, instances)) <= {dict}:
        for i, instance in enumerate(instances):
            if type(instance) is not dict:
                raise RequestError(f"must be a JSON object (one transaction), {_got(instance)}", index=i)
    reasons = reasons_mode(payload.get("parameters"), contract.default_reasons)
    sent = set(chain.from_iterable(instances))  # every key of every instance, in one C-level pass
    columns: dict[str, Any] = {}
    for field, column in _V1_COLUMNS.items():
        if field not in contract.required:
            if field in sent:  # optional, but sent: it must still be valid
                column.check([i[field] for i in instances if field in i])
            continue
        try:
            values: list[object] = list(map(itemgetter(field), instances))
        except KeyError:
            values = [instance.get(field, MISSING) for instance in instances]
        checked = column.check(values)
        if field in contract.needed:
            columns[field] = checked
    return Batch(columns=columns, rows=len(instances), reasons=reasons, request_id=request_id)


# --------------------------------------------------------------------------------------------------------- V2


def _decode_bytes(values: Sequence[object], column: _Column) -> list[object]:
    """gRPC and binary REST carry BYTES as bytes; JSON REST as str. Decode bytes strictly as UTF-8."""
    out: list[object] = []
    for i, value in enumerate(values):
        if isinstance(value, bytes | np.bytes_):
            try:
                out.append(bytes(value).decode("utf-8"))
            except UnicodeDecodeError:
                raise column.fail("is not valid UTF-8 text", i) from None
        else:
            out.append(value)
    return out


def _v2_values(tensor: InferInput, column: _Column) -> tuple[Sequence[object] | np.ndarray, int]:
    """The flat values of one V2 input and its declared row count, after datatype and shape checks."""
    kind = column.field.kind
    datatype = str(tensor.datatype).upper()
    if datatype not in V2_DATATYPES[kind]:
        allowed = " or ".join(V2_DATATYPES[kind])
        raise column.fail(f"datatype {datatype} is not accepted; send {allowed}", None)
    shape = list(tensor.shape) if isinstance(tensor.shape, list | tuple) else None
    if (
        shape is None
        or not all(type(d) is int for d in shape)
        or len(shape) not in (1, 2)
        or (len(shape) == 2 and shape[1] != 1)
        or shape[0] < 0
    ):
        raise column.fail(f"shape {shape!r} is not accepted; send [n] or [n, 1] for n transactions", None)
    rows = int(shape[0])
    raw = getattr(tensor, "_raw_data", None)
    if raw is not None:
        try:
            flat = tensor.as_numpy().reshape(-1)
        except Exception as exc:  # any decoding failure of client-supplied bytes is the client's error
            raise column.fail(f"binary data does not hold {rows} {datatype} values ({exc})", None) from None
        values: Sequence[object] | np.ndarray = (
            _decode_bytes(flat.tolist(), column)
            if datatype == "BYTES"
            else flat.astype(np.float64 if kind == "number" else np.int64)
        )
    else:
        data = tensor.data
        if data is None or isinstance(data, str | bytes | dict) or not hasattr(data, "__len__"):
            raise column.fail(f"'data' must be a list of {rows} values, {_got(data)}", None)
        values = list(data)
        if values and any(type(v) is list for v in values):
            if not all(type(v) is list and len(v) == 1 for v in values):
                raise column.fail("'data' must be flat, or nested as [[v], [v], ...] for shape [n, 1]", None)
            values = [v[0] for v in values]  # type: ignore[index]
        if datatype == "BYTES":
            values = _decode_bytes(values, column)
    if len(values) != rows:
        raise column.fail(f"shape says {rows} values but 'data' holds {len(values)}", None)
    return values, rows


def parse_v2(request: InferRequest, contract: Contract) -> Batch:
    """Validate a V2 (Open Inference Protocol) request: one named input per field, all of the same length.

    Raises:
        RequestError: naming the input (and the instance index for a bad value).
    """
    inputs = list(request.inputs or [])
    if not inputs:
        raise RequestError(f"no inputs; send one named input per field: {', '.join(FIELD_KINDS)}", field="inputs")
    seen: set[str] = set()
    values_by_field: dict[str, Sequence[object] | np.ndarray] = {}
    rows_by_field: dict[str, int] = {}
    for tensor in inputs:
        name = tensor.name
        if not isinstance(name, str) or name not in FIELD_KINDS:
            raise RequestError(
                f"unknown input; expected inputs named {', '.join(FIELD_KINDS)}", field=str(name), label="input"
            )
        if name in seen:
            raise RequestError("sent more than once", field=name, label="input")
        seen.add(name)
        column = _V2_COLUMNS[name]
        values_by_field[name], rows_by_field[name] = _v2_values(tensor, column)
    missing = [name for name in FIELD_KINDS if name in contract.required and name not in seen]
    if missing:
        raise RequestError("required input is missing", field=missing[0], label="input")
    lengths = set(rows_by_field.values())
    if len(lengths) > 1:
        detail = ", ".join(f"'{name}' {rows}" for name, rows in rows_by_field.items())
        raise RequestError(f"inputs must all hold the same number of transactions; got {detail}", field="inputs")
    rows = lengths.pop()
    _check_size(rows, contract, "inputs")
    reasons = reasons_mode(request.parameters, contract.default_reasons)
    columns: dict[str, Any] = {}
    for name, values in values_by_field.items():
        checked = _V2_COLUMNS[name].check(values)
        if name in contract.needed:
            columns[name] = checked
    request_id = request.id if isinstance(request.id, str) and request.id else None
    return Batch(columns=columns, rows=rows, reasons=reasons, request_id=request_id)
