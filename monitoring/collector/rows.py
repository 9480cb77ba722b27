"""Joined events → inference-log rows (and label posts → label rows), grouped into Parquet objects.

Runs in the flush thread, so it is plain column building: each request/response pair becomes as many rows as the
request had transactions (or the response had predictions, if that is more), with the request's fields as sent
and the response's score, decision, reasons and version. A half without its partner still gives rows
(``matched = False``); its other columns are null.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from operator import attrgetter
from typing import Annotated, Any, Final

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from fraud.contracts import PAYSIM
from fraud.errors import DataValidationError
from monitoring.collector.events import Envelope, Kind
from monitoring.collector.payloads import (
    ErrorResponse,
    Tensor,
    UnparseableBodyError,
    V1Request,
    V1Response,
    V2Request,
    V2Response,
    decode_request,
    decode_response,
    flat,
)
from monitoring.inference_log import LOG_SCHEMA, TRANSACTION_COLUMNS, UNKNOWN_VERSION, partition_prefix
from monitoring.labels import LABELS_SCHEMA, labels_prefix, parse_labels_body

ARMS: Final = {"default": "champion", "canary": "challenger"}
"""KServe's ``endpoint`` label values and the arm each one is in the rollout."""
_STEP_LIMIT: Final = 2**31


def _as_int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and -_STEP_LIMIT < value < _STEP_LIMIT:
        return value
    return None


def _as_float(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
        return number if math.isfinite(number) else None
    return None


def _as_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


_COERCE: Final = {
    name: {"integer": _as_int, "number": _as_float}.get(PAYSIM.field(name).kind, _as_str)
    for name in TRANSACTION_COLUMNS
}
"""Per kept field, how a sent value becomes a table value (anything of the wrong kind becomes null)."""


@dataclass
class Pair:
    """A request and/or its response (same ce-id)."""

    request: Envelope | None
    response: Envelope | None

    @property
    def first(self) -> Envelope:
        found = self.request or self.response
        assert found is not None
        return found


class _Columns:
    def __init__(self) -> None:
        self.data: dict[str, list[Any]] = {name: [] for name in LOG_SCHEMA.names}

    def __len__(self) -> int:
        return len(self.data["request_id"])


def _request_rows(request: V1Request | V2Request) -> tuple[str, list[dict[str, Any]] | dict[str, list[Any]], int]:
    """(protocol, per-row values (V1) or per-column values (V2), number of rows)."""
    if isinstance(request, V1Request):
        rows = [{name: _COERCE[name](getattr(txn, name)) for name in TRANSACTION_COLUMNS} for txn in request.instances]
        return "v1", rows, len(rows)
    columns: dict[str, list[Any]] = {}
    count = 0
    for tensor in request.inputs:
        if tensor.name in _COERCE and tensor.name not in columns:
            values = flat(tensor)
            coerce = _COERCE[tensor.name]
            columns[tensor.name] = [coerce(v) for v in values]
            count = max(count, len(values))
    return "v2", columns, count


@dataclass
class _Answer:
    scores: list[float | None]
    decisions: list[str | None]
    reasons: list[str | None]
    versions: list[str | None]
    status: int
    model_name: str | None


def _output(outputs: list[Tensor], name: str) -> list[Any]:
    for tensor in outputs:
        if tensor.name == name:
            return flat(tensor)
    return []


def _response_rows(response: V1Response | V2Response | ErrorResponse, status: int | None) -> _Answer:
    if isinstance(response, V1Response):
        preds = response.predictions
        return _Answer(
            scores=[_as_float(p.fraud_probability) for p in preds],
            decisions=[_as_str(p.decision) for p in preds],
            reasons=[bytes(p.reasons).decode() for p in preds],
            versions=[None if p.model_version is None else str(p.model_version) for p in preds],
            status=status or 200,
            model_name=None,
        )
    if isinstance(response, V2Response):
        scores = [_as_float(v) for v in _output(response.outputs, "fraud_probability")]
        n = len(scores)
        version = None if response.model_version is None else str(response.model_version)
        versions = [_as_str(v) for v in _output(response.outputs, "model_version")] or [version] * n
        return _Answer(
            scores=scores,
            decisions=[_as_str(v) for v in _output(response.outputs, "decision")],
            reasons=[_as_str(v) for v in _output(response.outputs, "reasons")],
            versions=versions,
            status=status or 200,
            model_name=_as_str(response.model_name),
        )
    return _Answer([], [], [], [], status or 500, None)


def _event_time(envelope: Envelope) -> float:
    """The event's own time (ce-time) when it parses, else when the collector received it."""
    if envelope.time:
        try:
            return datetime.fromisoformat(envelope.time.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    return envelope.received_at


def _at(values: list[Any], index: int) -> Any:
    return values[index] if index < len(values) else None


@dataclass
class _Sent:
    """The request side of a pair: protocol and transaction values, by row (V1) or by column (V2)."""

    protocol: str | None = None
    per_row: list[dict[str, Any]] | None = None
    per_column: dict[str, list[Any]] | None = None
    rows: int = 0


def _sent(request: Envelope | None) -> _Sent:
    if request is None:
        return _Sent()
    try:
        protocol, values, rows = _request_rows(decode_request(request.body))
    except UnparseableBodyError:  # checked on arrival; only a log written without checks gets here
        return _Sent()
    if isinstance(values, list):
        return _Sent(protocol, values, None, rows)
    return _Sent(protocol, None, values, rows)


def _answered(response: Envelope | None) -> _Answer:
    if response is None:
        return _Answer([], [], [], [], 0, None)
    try:
        return _response_rows(decode_response(response.body), response.status)
    except UnparseableBodyError:
        return _Answer([], [], [], [], response.status or 0, None)


def _add_pair(out: dict[tuple[str, str], _Columns], pair: Pair) -> None:
    request, response = pair.request, pair.response
    sent = _sent(request)
    answer = _answered(response)
    protocol = sent.protocol
    if protocol is None and response is not None:
        protocol = "v1" if response.body.lstrip().startswith(b'{"predictions"') else "v2"
    per_row, per_column, n_request = sent.per_row, sent.per_column or {}, sent.rows
    first = pair.first
    received_ms = int(first.received_at * 1000)
    day = datetime.fromtimestamp(first.received_at, UTC).date()
    latency = (
        (_event_time(response) - _event_time(request)) * 1000.0
        if request is not None and response is not None
        else None
    )
    matched = request is not None and response is not None
    endpoint = first.endpoint
    arm = ARMS.get(endpoint or "", endpoint) or first.component or first.source
    model_name = first.model_name or answer.model_name
    rows = max(n_request, len(answer.scores), len(answer.decisions), 1)
    for index in range(rows):
        version = _at(answer.versions, index) or (answer.versions[0] if answer.versions else None) or UNKNOWN_VERSION
        columns = out.get((day.isoformat(), version))
        if columns is None:
            columns = out[(day.isoformat(), version)] = _Columns()
        data = columns.data
        data["request_id"].append(first.id)
        data["row"].append(index)
        data["received_at"].append(received_ms)
        data["model_name"].append(model_name)
        data["model_version"].append(version)
        data["arm"].append(arm)
        data["endpoint"].append(endpoint)
        data["protocol"].append(protocol)
        if per_row is not None:
            txn = per_row[index] if index < n_request else {}
            for name in TRANSACTION_COLUMNS:
                data[name].append(txn.get(name))
        else:
            for name in TRANSACTION_COLUMNS:
                data[name].append(_at(per_column.get(name, []), index))
        data["score"].append(_at(answer.scores, index))
        data["decision"].append(_at(answer.decisions, index))
        data["reasons"].append(_at(answer.reasons, index))
        data["status"].append(answer.status if response is not None else None)
        data["latency_ms"].append(latency)
        data["matched"].append(matched)


class _TypedTransaction(msgspec.Struct, gc=False):
    """A V1 instance whose kept fields all have the contract's JSON kinds (the everyday case)."""

    step: Annotated[int, msgspec.Meta(ge=-(2**31), lt=2**31)] | None = None
    type: str | None = None
    amount: float | None = None
    nameOrig: str | None = None  # noqa: N815 (the dataset's spelling)
    oldbalanceOrg: float | None = None  # noqa: N815
    nameDest: str | None = None  # noqa: N815
    oldbalanceDest: float | None = None  # noqa: N815
    newbalanceOrig: float | None = None  # noqa: N815
    newbalanceDest: float | None = None  # noqa: N815


class _TypedRequest(msgspec.Struct, gc=False):
    instances: list[_TypedTransaction]


class _TypedPrediction(msgspec.Struct, gc=False):
    fraud_probability: float | None = None
    decision: str | None = None
    model_version: str | None = None
    reasons: msgspec.Raw = msgspec.field(default_factory=lambda: msgspec.Raw(b"[]"))


class _TypedResponse(msgspec.Struct, gc=False):
    predictions: list[_TypedPrediction]


_TYPED_REQUEST: Final = msgspec.json.Decoder(_TypedRequest)
_TYPED_RESPONSE: Final = msgspec.json.Decoder(_TypedResponse)
_TXN_GETTERS: Final = [(name, attrgetter(name)) for name in TRANSACTION_COLUMNS]


def _typed(pair: Pair) -> tuple[list[_TypedTransaction], list[_TypedPrediction]] | None:
    """Both halves of a V1 call, strictly typed, with one prediction per instance; else None (general path)."""
    if pair.request is None or pair.response is None or pair.response.status not in (None, 200):
        return None
    try:
        txns = _TYPED_REQUEST.decode(pair.request.body).instances
        preds = _TYPED_RESPONSE.decode(pair.response.body).predictions
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    if not txns or len(txns) != len(preds):  # (JSON has no NaN or infinity: msgspec refuses them)
        return None
    return txns, preds


def _typed_table(pairs: list[Pair], decoded: list[tuple[list[_TypedTransaction], list[_TypedPrediction]]]) -> pa.Table:
    """The rows of matched V1 pairs, built a column at a time."""
    owner: list[int] = []
    index: list[int] = []
    txns: list[_TypedTransaction] = []
    preds: list[_TypedPrediction] = []
    for k, (pair_txns, pair_preds) in enumerate(decoded):
        owner.extend([k] * len(pair_txns))
        index.extend(range(len(pair_txns)))
        txns.extend(pair_txns)
        preds.extend(pair_preds)
    requests = [pair.request for pair in pairs]
    responses = [pair.response for pair in pairs]
    assert all(r is not None for r in requests) and all(r is not None for r in responses)
    latency = [(_event_time(resp) - _event_time(req)) * 1000.0 for req, resp in zip(requests, responses, strict=True)]  # type: ignore[arg-type]
    arm = [ARMS.get(r.endpoint or "", r.endpoint) or r.component or r.source for r in requests]  # type: ignore[union-attr]
    per_pair: dict[str, list[Any]] = {
        "request_id": [r.id for r in requests],  # type: ignore[union-attr]
        "received_at": [int(r.received_at * 1000) for r in requests],  # type: ignore[union-attr]
        "model_name": [r.model_name for r in requests],  # type: ignore[union-attr]
        "arm": arm,
        "endpoint": [r.endpoint for r in requests],  # type: ignore[union-attr]
        "status": [r.status or 200 for r in responses],  # type: ignore[union-attr]
        "latency_ms": latency,
    }
    columns: dict[str, Any] = {name: [values[k] for k in owner] for name, values in per_pair.items()}
    columns["row"] = index
    columns["model_version"] = [p.model_version or UNKNOWN_VERSION for p in preds]
    columns["protocol"] = ["v1"] * len(txns)
    for name, get in _TXN_GETTERS:
        columns[name] = [get(t) for t in txns]
    columns["score"] = [p.fraud_probability for p in preds]
    columns["decision"] = [p.decision for p in preds]
    columns["reasons"] = [bytes(p.reasons).decode() for p in preds]
    columns["matched"] = [True] * len(txns)
    return pa.table({field.name: pa.array(columns[field.name], field.type) for field in LOG_SCHEMA}, schema=LOG_SCHEMA)


def _partitions(table: pa.Table) -> dict[str, pa.Table]:
    """Split rows by (day of received_at, model version) into tables keyed by their partition prefix."""
    days = pc.strftime(table.column("received_at"), format="%Y-%m-%d").to_pylist()
    versions = table.column("model_version").to_pylist()
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, key in enumerate(zip(days, versions, strict=True)):
        groups[key].append(i)
    if len(groups) == 1:
        ((day, version),) = groups
        return {partition_prefix(date.fromisoformat(day), version): table}
    return {
        partition_prefix(date.fromisoformat(day), version): table.take(pa.array(rows, pa.int64()))
        for (day, version), rows in groups.items()
    }


def log_tables(pairs: list[Pair]) -> dict[str, pa.Table]:
    """Inference-log tables keyed by their partition prefix (``inference-log/day=…/model_version=…/``).

    Matched V1 calls with well-typed bodies (nearly all traffic) take a columnar path; the rest (V2, unmatched
    halves, odd values) the general one, which keeps anything of the wrong kind as a null.
    """
    typed_pairs: list[Pair] = []
    typed: list[tuple[list[_TypedTransaction], list[_TypedPrediction]]] = []
    out: dict[tuple[str, str], _Columns] = {}
    for pair in pairs:
        decoded = _typed(pair)
        if decoded is None:
            _add_pair(out, pair)
        else:
            typed_pairs.append(pair)
            typed.append(decoded)
    parts: dict[str, list[pa.Table]] = defaultdict(list)
    if typed:
        for prefix, table in _partitions(_typed_table(typed_pairs, typed)).items():
            parts[prefix].append(table)
    for (day, version), columns in out.items():
        table = pa.table(
            {field.name: pa.array(columns.data[field.name], field.type) for field in LOG_SCHEMA}, schema=LOG_SCHEMA
        )
        parts[partition_prefix(datetime.fromisoformat(day).date(), version)].append(table)
    return {prefix: pa.concat_tables(tables) for prefix, tables in sorted(parts.items())}


def label_tables(posts: list[Envelope]) -> dict[str, pa.Table]:
    """Label rows of the ``/v1/labels`` posts, keyed by the arrival day's prefix."""
    by_day: dict[str, list[pa.Table]] = defaultdict(list)
    for post in posts:
        if post.kind != Kind.LABELS:
            continue
        received = datetime.fromtimestamp(post.received_at, UTC)
        try:
            table = parse_labels_body(post.body, received)
        except DataValidationError:  # checked on arrival
            continue
        by_day[labels_prefix(received.date())].append(table)
    return {prefix: pa.concat_tables(tables).cast(LABELS_SCHEMA) for prefix, tables in sorted(by_day.items())}
