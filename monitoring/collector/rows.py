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
from datetime import UTC, datetime
from itertools import repeat
from typing import Annotated, Any, Final

import msgspec
import numpy as np
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


class Pair(msgspec.Struct, gc=False):
    """A request and/or its response (same ce-id).

    Not tracked by the garbage collector (it only points at envelopes, which point at nothing): a replay holds
    a million of them, and tracked objects make every collection walk them all.
    """

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
_TYPED_REQUESTS: Final = msgspec.json.Decoder(list[_TypedRequest])
_TYPED_RESPONSES: Final = msgspec.json.Decoder(list[_TypedResponse])
_TXN_FIELDS: Final = _TypedTransaction.__struct_fields__
Typed = tuple[list[_TypedTransaction], list[_TypedPrediction]]


def _typed(pair: Pair) -> Typed | None:
    """Both halves of a V1 call, strictly typed, with one prediction per instance; else None (general path)."""
    if not _candidate(pair):
        return None
    assert pair.request is not None and pair.response is not None
    try:
        txns = _TYPED_REQUEST.decode(pair.request.body).instances
        preds = _TYPED_RESPONSE.decode(pair.response.body).predictions
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    if not txns or len(txns) != len(preds):  # (JSON has no NaN or infinity: msgspec refuses them)
        return None
    return txns, preds


def _candidate(pair: Pair) -> bool:
    return pair.request is not None and pair.response is not None and pair.response.status in (None, 200)


def _decode_all(decoder: msgspec.json.Decoder[list[Any]], bodies: list[bytes]) -> list[Any] | None:
    """Many JSON bodies in one decoder call (as one JSON array); None if any of them does not fit."""
    try:
        decoded = decoder.decode(b"[" + b",".join(bodies) + b"]")
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    return decoded if len(decoded) == len(bodies) else None  # (a body holding "a, b" would shift the rest)


def _split_typed(pairs: list[Pair]) -> tuple[list[Pair], list[Typed], list[Pair]]:
    """(pairs for the columnar path, their decoded halves, the rest for the general path).

    All bodies of a flush are decoded in two calls; if one of them does not fit the strict types, the flush
    falls back to one decode per pair (so one odd event costs its flush time, never correctness).
    """
    candidates = [pair for pair in pairs if _candidate(pair)]
    requests = _decode_all(_TYPED_REQUESTS, [pair.request.body for pair in candidates])  # type: ignore[union-attr]
    responses = (
        None if requests is None else _decode_all(_TYPED_RESPONSES, [pair.response.body for pair in candidates])  # type: ignore[union-attr]
    )
    typed_pairs: list[Pair] = []
    typed: list[Typed] = []
    rest: list[Pair] = []
    if requests is None or responses is None:
        for pair in pairs:
            decoded = _typed(pair)
            if decoded is None:
                rest.append(pair)
            else:
                typed_pairs.append(pair)
                typed.append(decoded)
        return typed_pairs, typed, rest
    rest = [pair for pair in pairs if not _candidate(pair)]
    for pair, request, response in zip(candidates, requests, responses, strict=True):
        txns, preds = request.instances, response.predictions
        if not txns or len(txns) != len(preds):
            rest.append(pair)
        else:
            typed_pairs.append(pair)
            typed.append((txns, preds))
    return typed_pairs, typed, rest


def _event_times(envelopes: list[Envelope]) -> pa.Array:
    """Each event's own time (ce-time when it parses, else its receive time), seconds since the epoch.

    RFC 3339 times (what a payload logger sends) are parsed by Arrow in one call; anything else one at a time.
    """
    received = pa.array([e.received_at for e in envelopes], pa.float64())
    sent = pa.array([e.time for e in envelopes], pa.string())
    if sent.null_count == len(sent):
        return received
    try:
        parsed = pc.cast(sent, pa.timestamp("us", tz="UTC"))
    except pa.ArrowInvalid:
        return pa.array([_event_time(e) for e in envelopes], pa.float64())
    seconds = pc.divide(pc.cast(pc.cast(parsed, pa.timestamp("us")), pa.int64()), 1e6)
    return pc.coalesce(seconds, received)


def _typed_table(pairs: list[Pair], decoded: list[Typed]) -> pa.Table:
    """The rows of matched V1 pairs, built a column at a time (a pair gives one row per transaction)."""
    requests = [pair.request for pair in pairs]
    responses = [pair.response for pair in pairs]
    assert all(r is not None for r in requests) and all(r is not None for r in responses)
    counts = np.fromiter((len(txns) for txns, _ in decoded), dtype=np.int64, count=len(decoded))
    txns = [txn for pair_txns, _ in decoded for txn in pair_txns]
    preds = [pred for _, pair_preds in decoded for pred in pair_preds]
    latency = pc.multiply(pc.subtract(_event_times(responses), _event_times(requests)), 1000.0)  # type: ignore[arg-type]
    per_pair: dict[str, Any] = {
        "request_id": pa.array([r.id for r in requests], pa.string()),  # type: ignore[union-attr]
        "received_at": pa.array([int(r.received_at * 1000) for r in requests], pa.int64()),  # type: ignore[union-attr]
        "model_name": pa.array([r.model_name for r in requests], pa.string()),  # type: ignore[union-attr]
        "arm": pa.array(
            [ARMS.get(r.endpoint or "", r.endpoint) or r.component or r.source for r in requests],  # type: ignore[union-attr]
            pa.string(),
        ),
        "endpoint": pa.array([r.endpoint for r in requests], pa.string()),  # type: ignore[union-attr]
        "status": pa.array([r.status or 200 for r in responses], pa.int32()),  # type: ignore[union-attr]
        "latency_ms": latency,
    }
    if bool((counts == 1).all()):  # one transaction per call, the usual case
        columns = per_pair
        columns["row"] = np.zeros(len(txns), dtype=np.int32)
    else:
        owner = pa.array(np.repeat(np.arange(len(counts)), counts))
        columns = {name: values.take(owner) for name, values in per_pair.items()}
        starts = np.repeat(np.cumsum(counts) - counts, counts)
        columns["row"] = (np.arange(len(txns)) - starts).astype(np.int32)
    columns["model_version"] = [p.model_version or UNKNOWN_VERSION for p in preds]
    columns["protocol"] = pa.array(["v1"], pa.string()).take(pa.array(np.zeros(len(txns), dtype=np.int64)))
    by_field = zip(*[msgspec.structs.astuple(txn) for txn in txns], strict=True) if txns else repeat([])
    columns.update(zip(_TXN_FIELDS, by_field, strict=False))
    columns["score"] = [p.fraud_probability for p in preds]
    columns["decision"] = [p.decision for p in preds]
    columns["reasons"] = [bytes(p.reasons).decode() for p in preds]
    columns["matched"] = np.ones(len(txns), dtype=np.bool_)
    arrays = {}
    for field in LOG_SCHEMA:
        values = columns[field.name]
        arrays[field.name] = (
            values.cast(field.type) if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(values, field.type)
        )
    return pa.table(arrays, schema=LOG_SCHEMA)


def _partitions(table: pa.Table) -> dict[str, pa.Table]:
    """Split rows by (day of received_at, model version) into tables keyed by their partition prefix."""
    days = pc.cast(table.column("received_at"), pa.date32())
    versions = table.column("model_version")
    keys = pa.table({"day": days, "version": versions}).group_by(["day", "version"]).aggregate([])
    if keys.num_rows == 1:
        return {partition_prefix(keys.column("day")[0].as_py(), keys.column("version")[0].as_py()): table}
    out: dict[str, pa.Table] = {}
    for day, version in zip(keys.column("day").to_pylist(), keys.column("version").to_pylist(), strict=True):
        mask = pc.and_(pc.equal(days, pa.scalar(day, pa.date32())), pc.equal(versions, version))
        out[partition_prefix(day, version)] = table.filter(mask)
    return out


def log_tables(pairs: list[Pair]) -> dict[str, pa.Table]:
    """Inference-log tables keyed by their partition prefix (``inference-log/day=…/model_version=…/``).

    Matched V1 calls with well-typed bodies (nearly all traffic) take a columnar path; the rest (V2, unmatched
    halves, odd values) the general one, which keeps anything of the wrong kind as a null.
    """
    typed_pairs, typed, rest = _split_typed(pairs)
    out: dict[tuple[str, str], _Columns] = {}
    for pair in rest:
        _add_pair(out, pair)
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
