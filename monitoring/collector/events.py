"""A CloudEvent in binary mode (KServe's payload logger) as the collector receives, keeps and replays it.

`Envelope` is both the in-memory event and its write-ahead-log record (msgspec msgpack, array-like), so the
bytes on disk are exactly what the flush later reads back: the ``ce-*`` attributes that matter for the log,
the receive time, and the body untouched.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from enum import IntEnum
from typing import Final

import msgspec

from monitoring.collector.payloads import UnparseableBodyError, decode_request, decode_response
from monitoring.collector.wal import GROUP_MARK

REQUEST_TYPE: Final = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE: Final = "org.kubeflow.serving.inference.response"


class Kind(IntEnum):
    REQUEST = 0
    RESPONSE = 1
    LABELS = 2
    """A batch of labels posted to /v1/labels (not a CloudEvent, but logged and flushed the same way)."""


EVENT_KINDS: Final = {REQUEST_TYPE: Kind.REQUEST, RESPONSE_TYPE: Kind.RESPONSE}
STATUS_HEADER: Final = "ce-httpstatus"
"""Optional extension: the HTTP status the predictor answered (KServe only logs 200s and does not send it)."""


class Envelope(msgspec.Struct, array_like=True, gc=False):
    """One accepted event. ``seq`` orders every record of one write-ahead log."""

    seq: int
    kind: int
    id: str
    received_at: float
    """Collector's clock, seconds since the epoch."""
    time: str | None
    source: str | None
    model_name: str | None
    namespace: str | None
    component: str | None
    endpoint: str | None
    status: int | None
    body: bytes
    key: int = 0
    """`dedup_key` of (id, kind), kept so a replay need not hash every event again (0: not kept, compute it)."""


_ENCODER: Final = msgspec.msgpack.Encoder()
_DECODER: Final = msgspec.msgpack.Decoder(Envelope)
_GROUP_DECODER: Final = msgspec.msgpack.Decoder(list[Envelope])


def encode(envelope: Envelope) -> bytes:
    return _ENCODER.encode(envelope)


def decode(payload: bytes) -> Envelope:
    return _DECODER.decode(payload)


_GROUP_MARK_BYTE: Final = bytes((GROUP_MARK,))


def decode_group(record: bytes | memoryview) -> list[Envelope]:
    """The envelopes of one write-ahead record: a group (`monitoring.collector.wal.group_record`) or, as an
    earlier collector wrote them, a single envelope."""
    if record[:1] == _GROUP_MARK_BYTE:
        return _GROUP_DECODER.decode(record)
    return [_DECODER.decode(record)]


class BadEventError(ValueError):
    """An event the collector refuses; ``reason`` is the metric label, ``status`` the HTTP answer."""

    def __init__(self, reason: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status


_interned: dict[bytes, str] = {}


def _text(value: bytes | None) -> str | None:
    """Header values repeat (model, namespace, arm): keep one string per distinct value, bounded."""
    if value is None:
        return None
    found = _interned.get(value)
    if found is None:
        found = value.decode("latin-1")
        if len(_interned) < 10_000 and len(value) <= 256:
            _interned[value] = found
    return found


_EVENT_KINDS_RAW: Final = {name.encode(): kind for name, kind in EVENT_KINDS.items()}
_STATUS_RAW: Final = STATUS_HEADER.encode()


def from_http(headers: Mapping[bytes, bytes], body: bytes, seq: int = 0) -> Envelope:
    """Check a binary-mode CloudEvent and build its envelope (``seq`` is filled in by the caller's log).

    ``headers`` has lower-cased names.

    Raises:
        BadEventError: missing or unknown attributes, or a body that is not a V1/V2 request/response.
    """
    if b"ce-specversion" not in headers:
        raise BadEventError("not_cloudevent", "not a binary-mode CloudEvent: no ce-specversion header")
    raw_type = headers.get(b"ce-type", b"")
    kind = _EVENT_KINDS_RAW.get(raw_type)
    if kind is None:
        known = ", ".join(sorted(EVENT_KINDS))
        raise BadEventError("unknown_type", f"ce-type '{raw_type.decode('latin-1')[:100]}' is not one of {known}")
    event_id = headers.get(b"ce-id", b"").decode("latin-1").strip()
    if not event_id:
        raise BadEventError("missing_id", "the ce-id header is missing or empty")
    if len(event_id) > 256:
        raise BadEventError("missing_id", "ce-id is longer than 256 characters")
    try:
        if kind is Kind.REQUEST:
            decode_request(body)
        else:
            decode_response(body)
    except UnparseableBodyError as exc:
        raise BadEventError("unparseable_body", str(exc)) from None
    status_raw = headers.get(_STATUS_RAW)
    status: int | None = None
    if status_raw is not None:
        try:
            status = int(status_raw)
        except ValueError:
            raise BadEventError("bad_header", f"{STATUS_HEADER} must be an integer HTTP status") from None
    get = headers.get
    sent_at = get(b"ce-time")
    return Envelope(
        seq,
        int(kind),
        event_id,
        time.time(),
        None if sent_at is None else sent_at.decode("latin-1"),
        _text(get(b"ce-source")),
        _text(get(b"ce-inferenceservicename")),
        _text(get(b"ce-namespace")),
        _text(get(b"ce-component")),
        _text(get(b"ce-endpoint")),
        status,
        body,
    )


_KEY_HASHERS: Final = {int(kind): hashlib.blake2b(digest_size=8, person=b"ce-type%d" % kind) for kind in Kind}
"""One keyed hasher per kind, copied per event (a copy costs half of building one with its ``person``)."""


def dedup_key(event_id: str, kind: int) -> int:
    """64-bit key of (ce-id, ce-type): what "the same event" means for duplicate deliveries."""
    hasher = _KEY_HASHERS[kind].copy()
    hasher.update(event_id.encode())
    return int.from_bytes(hasher.digest(), "little")
