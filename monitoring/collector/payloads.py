"""The bodies a payload logger sends: V1/V2 requests and responses, decoded leniently with msgspec.

The predictor has already judged the request; the log keeps what was sent, so these types accept any JSON
value in a transaction field (a wrong one becomes a null in the table, see `monitoring.collector.rows`) but
refuse a body that is not one of the four shapes at all: that is the collector's "unparseable body".
"""

from __future__ import annotations

from typing import Any, Final, Literal

import msgspec

Protocol = Literal["v1", "v2"]


class Transaction(msgspec.Struct, gc=False):
    """One V1 instance; fields the log does not keep are ignored."""

    step: Any = None
    type: Any = None
    amount: Any = None
    nameOrig: Any = None  # noqa: N815 (the dataset's spelling)
    oldbalanceOrg: Any = None  # noqa: N815
    nameDest: Any = None  # noqa: N815
    oldbalanceDest: Any = None  # noqa: N815
    newbalanceOrig: Any = None  # noqa: N815
    newbalanceDest: Any = None  # noqa: N815


class V1Request(msgspec.Struct, gc=False):
    instances: list[Transaction]
    id: Any = None


class Tensor(msgspec.Struct, gc=False):
    """A V2 input or output; ``data`` flat or nested one level (shape [n, 1])."""

    name: str
    data: list[Any]
    datatype: Any = None
    shape: Any = None


class V2Request(msgspec.Struct, gc=False):
    inputs: list[Tensor]
    id: Any = None


class Prediction(msgspec.Struct, gc=False):
    """One V1 prediction as `serving` answers it; ``reasons`` kept as the raw JSON list."""

    fraud_probability: Any = None
    decision: Any = None
    model_version: Any = None
    reasons: msgspec.Raw = msgspec.field(default_factory=lambda: msgspec.Raw(b"[]"))


class V1Response(msgspec.Struct, gc=False):
    predictions: list[Prediction]


class V2Response(msgspec.Struct, gc=False):
    outputs: list[Tensor]
    model_name: Any = None
    model_version: Any = None
    id: Any = None


class ErrorResponse(msgspec.Struct, gc=False):
    """What the predictor answers on a 4xx/5xx (``{"error": "..."}``)."""

    error: Any


Request = V1Request | V2Request
Response = V1Response | V2Response | ErrorResponse

_V1_REQUEST: Final = msgspec.json.Decoder(V1Request)
_V2_REQUEST: Final = msgspec.json.Decoder(V2Request)
_V1_RESPONSE: Final = msgspec.json.Decoder(V1Response)
_V2_RESPONSE: Final = msgspec.json.Decoder(V2Response)
_ERROR: Final = msgspec.json.Decoder(ErrorResponse)


class UnparseableBodyError(ValueError):
    """The body is not JSON, or not a V1/V2 request (or response, or error) body."""


def decode_request(body: bytes) -> Request:
    try:
        return _V1_REQUEST.decode(body)
    except msgspec.ValidationError:
        pass
    except msgspec.DecodeError as exc:
        raise UnparseableBodyError(f"request body is not JSON: {exc}") from None
    try:
        return _V2_REQUEST.decode(body)
    except msgspec.ValidationError as exc:
        raise UnparseableBodyError(f"request body is neither V1 (instances) nor V2 (inputs): {exc}") from None


def decode_response(body: bytes) -> Response:
    try:
        return _V1_RESPONSE.decode(body)
    except msgspec.ValidationError:
        pass
    except msgspec.DecodeError as exc:
        raise UnparseableBodyError(f"response body is not JSON: {exc}") from None
    for decoder in (_V2_RESPONSE, _ERROR):
        try:
            return decoder.decode(body)
        except msgspec.ValidationError:
            continue
    raise UnparseableBodyError("response body is neither V1 (predictions), V2 (outputs) nor an error ({'error': ...})")


def flat(tensor: Tensor) -> list[Any]:
    """A tensor's values as a flat list (KServe allows ``[[v], [v]]`` for shape [n, 1])."""
    data = tensor.data
    if data and isinstance(data[0], list):
        return [item for inner in data for item in (inner if isinstance(inner, list) else [inner])]
    return data
