"""The KServe model server, adjusted where its defaults do not fit a fraud predictor.

`FraudModelServer` is `kserve.ModelServer` (same FastAPI app, same V1/V2 routes, same gRPC servicer, same
``/metrics``) with seven changes, each for a reason (the KServe internals they reuse are in `fraud.compat.kserve`):

1. **Bind address.** KServe binds REST to 0.0.0.0 and gRPC to [::] with no option. Locally that exposes a
   model to the network, so both bind ``FRAUD_SERVE_HOST`` (127.0.0.1 by default; a pod sets 0.0.0.0, which
   keeps KServe's dual-stack [::] for gRPC).
2. **Readiness.** KServe's server readiness (``/v2/health/ready``, gRPC ``ServerReady``) is always true. Here it
   is true only when every registered model is loaded, and the model is registered before it is ready, so
   probes see 503 while the loader retries instead of a server that refuses to start.
3. **Errors.** Invalid input is logged as one warning line, not a traceback, and its body names the field and
   instance; "not ready" (503, what probes see while the model loads) and "not found" (404) are one line too.
   FastAPI answers a malformed V2 body with 422 and its own error list; it gets a 400 with one clear message
   like every other invalid input. Malformed V2 binary payloads (a ``KeyError`` deep in KServe's decoder would
   be a 500) become 400s.
4. **Request logging and bodies.** One JSON line per request (REST middleware, gRPC interceptor) with the
   request id, status and latency, replacing uvicorn's access log and KServe's timing lines. The middleware
   reads every body itself, whatever its framing: a declared ``Content-Length`` above ``FRAUD_SERVE_MAX_BODY_BYTES``
   is refused with 413 before reading, a chunked body as soon as it passes the cap (uvicorn would hand FastAPI
   the whole of it), a body not complete within ``FRAUD_SERVE_READ_TIMEOUT`` gets 408, and a client that goes
   away mid-body is logged as 499 at INFO rather than as a server error. Inference bodies that are not UTF-8 are
   400s naming the byte, on both paths; bodies nested past a JSON parser's depth are 400s with one message
   whichever parser met them (msgspec, orjson, or FastAPI's ``json``, whose ``RecursionError`` FastAPI reports
   as "error parsing the body"). gRPC messages that do not parse are ``INVALID_ARGUMENT``, not ``UNKNOWN``.
5. **A fast path for inference.** The REST middleware sits in front of FastAPI and answers the two inference
   routes itself when the request is plain JSON for a loaded model: body → ``msgspec`` (`serving.decoding`: a
   valid body, decoded and checked in one pass) or ``orjson`` → the predictor's hooks
   (`FraudPredictor.infer_rest`) → ``orjson`` → two ASGI messages. FastAPI's routing, dependency resolution and
   pydantic validation of V2 bodies, KServe's decode/encode and the response model's re-validation of every
   output value cost several times the model itself on a single transaction, and ~100 ms on a 1,000-row V2
   batch. Everything else (probes, metadata, ``/metrics``, CloudEvents, binary V2, non-JSON content types, V2
   bodies that are not plainly well-formed) goes through KServe's routes unchanged, and a V2 body the fast path
   does not accept is replayed to them, so malformed requests get exactly KServe's answers.
   ``FRAUD_SERVE_FAST_PATH=0`` switches it off: every request then goes through KServe's routes and
   `kserve.Model.__call__` (and the model libraries' public APIs), with the same answers.
6. **Graceful shutdown.** On SIGTERM/SIGINT both servers stop accepting at once, in-flight requests finish (up
   to ``FRAUD_SERVE_GRACE_PERIOD``), the model is unloaded last, and the process exits 0. KServe's own handler
   lets uvicorn capture the signal first, stops gRPC only after REST has drained, and unloads the model while
   gRPC calls may still need it.
7. **Payload log.** With ``FRAUD_SERVE_LOGGER_URL`` set, every JSON inference request on REST and its answer are
   sent to that collector as the CloudEvents KServe's payload logger sends (`serving.payload_log`), after the
   answer has gone out, through a bounded queue: a slow or dead collector never delays or fails a prediction,
   and what could not be sent is counted on ``/metrics`` (``fraud_payload_log_events_{sent,failed,dropped}``).
   On a cluster KServe's agent does this (``logger.url``) and the setting stays unset. gRPC calls are not logged.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import signal
import struct
from collections.abc import Awaitable, Callable, Coroutine, Iterable, MutableMapping
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final

import grpc
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import ORJSONResponse
from grpc import aio
from kserve import ModelServer
from kserve.constants.constants import FASTAPI_APP_IMPORT_STRING
from kserve.errors import InvalidInput, ModelNotFound, ModelNotReady, ServerNotReady, generic_exception_handler
from kserve.model import BaseKServeModel
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor
from kserve.protocol.grpc.server import GRPCServer
from kserve.protocol.grpc.servicer import InferenceServicer
from kserve.protocol.infer_type import InferInput, InferRequest, RequestedOutput
from kserve.protocol.rest.server import RESTServer
from kserve.utils.utils import is_structured_cloudevent
from starlette.exceptions import HTTPException as StarletteHTTPException
from uvicorn.importer import import_from_string

from fraud.compat import kserve as kserve_compat
from serving import logs
from serving.payload_log import PredictorLogger
from serving.validation import RequestError

log = logging.getLogger(__name__)
request_log = logging.getLogger(logs.REQUEST_LOGGER)

STOP_SIGNALS: Final = (signal.SIGTERM, signal.SIGINT)
PAYLOAD_LOG_DRAIN_S: Final = 2.0
"""At shutdown, how long queued payload-log events get to reach the collector before they are given up."""


# --------------------------------------------------------------------------------------------- data plane


class FraudDataPlane(DataPlane):  # type: ignore[misc]
    """KServe's data plane with a readiness that means "can score" and a V2 binary decoder that cannot 500."""

    async def ready(self) -> bool:
        models = list(self.model_registry.get_models().values())
        if not models:
            return False
        for model in models:
            if not await model.healthy():
                return False
        return bool(await super().ready())

    def decode_inference_request(self, body: Any, headers: dict[str, str], model_name: str) -> InferRequest:
        try:
            return super().decode_inference_request(body, headers, model_name)
        except InvalidInput:
            raise
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, struct.error) as exc:
            raise RequestError(f"malformed V2 binary request ({type(exc).__name__}: {exc})") from None


# -------------------------------------------------------------------------------------------------- REST


def _error_response(status: int, body: dict[str, Any], *, close: bool = False) -> ORJSONResponse:
    """The ``{"error": ...}`` answer; ``close`` ends the connection after it (a body left unread behind it)."""
    logs.note(error=body.get("error"))
    return ORJSONResponse(status_code=status, content=body, headers={"connection": "close"} if close else None)


NESTED_TOO_DEEPLY: Final = "malformed JSON: arrays and objects nested too deeply (a valid request nests 4 levels)"
"""One message for a body nested deeper than a JSON parser follows, whichever parser met it first (orjson stops at
1,024 levels, msgspec and Python's json at the interpreter's recursion limit)."""


def _json_failure(message: str) -> str:
    """A JSON parser's complaint as the client's error message."""
    if "depth limit exceeded" in message or "recursion" in message:
        return NESTED_TOO_DEEPLY
    return f"malformed JSON: {message}"


def utf8_problem(body: bytes) -> str | None:
    """Why ``body`` is not UTF-8 text (which byte, where), or None; JSON must be UTF-8 (RFC 8259)."""
    if body.isascii():
        return None
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return (
            f"request body is not valid UTF-8: byte 0x{body[exc.start]:02x} at offset {exc.start} ({exc.reason}); "
            "JSON text must be UTF-8"
        )
    return None


async def invalid_input_handler(_: Request, exc: Exception) -> ORJSONResponse:
    """400 with the message (and field/instance when known); a warning line, no traceback: it is not our bug."""
    body = exc.as_json() if isinstance(exc, RequestError) else {"error": _friendly(str(exc))}
    log.warning("invalid input: %s", body["error"])
    return _error_response(400, body)


def _friendly(message: str) -> str:
    if message.startswith("Unrecognized request format"):
        return _json_failure(message.split(":", 1)[-1].strip())
    return message


_UNION_MEMBERS: Final = frozenset({"body", "InferenceRequest", "bytes"})
"""Parts of a FastAPI error location that name the request body or a member of KServe's body union."""


def _location(loc: Iterable[Any]) -> str:
    path = ""
    for part in loc:
        if part in _UNION_MEMBERS:
            continue
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


async def request_validation_handler(_: Request, exc: Exception) -> ORJSONResponse:
    """FastAPI's 422 for a V2 body it cannot parse or validate, as a 400 naming the first bad field."""
    errors = list(exc.errors()) if isinstance(exc, RequestValidationError) else []
    # KServe's V2 body is Union[InferenceRequest, bytes]: the "not bytes" complaint says nothing to a client.
    errors = [e for e in errors if "bytes" not in tuple(e.get("loc", ()))[1:2]] or errors
    first = errors[0] if errors else {}
    if first.get("type") == "json_invalid":
        detail = (first.get("ctx") or {}).get("error", "invalid JSON")
        body: dict[str, Any] = {"error": f"malformed JSON: {detail}"}
    else:
        where = _location(first.get("loc", ())) or "body"
        body = {"error": f"{where}: {first.get('msg', 'invalid request body')}", "field": where}
        if len(errors) > 1:
            body["error"] += f" (and {len(errors) - 1} more problem(s))"
    log.warning("invalid input: %s", body["error"])
    return _error_response(400, body)


async def not_ready_handler(_: Request, exc: Exception) -> ORJSONResponse:
    """503 while the model loads: what readiness probes expect to see, so one line and no traceback."""
    return _error_response(503, {"error": str(exc)})


async def not_found_handler(_: Request, exc: Exception) -> ORJSONResponse:
    return _error_response(404, {"error": str(exc)})


async def http_error_handler(_: Request, exc: Exception) -> ORJSONResponse:
    """Starlette's own HTTP errors (unparseable body, unknown route, wrong method) in the same ``{"error"}`` shape."""
    status = int(getattr(exc, "status_code", 500))
    detail = getattr(exc, "detail", None) or HTTPStatus(status).phrase
    if status == 400 and isinstance(exc.__cause__, RecursionError):  # FastAPI: "error parsing the body"
        detail = NESTED_TOO_DEEPLY
    if status == 400:
        log.warning("invalid input: %s", detail)
    response = _error_response(status, {"error": str(detail)})
    for key, value in (getattr(exc, "headers", None) or {}).items():
        response.headers[key] = value
    return response


class RequestMiddleware:
    """Pure ASGI app in front of FastAPI: request id, one latency line per request, the body read with a size cap
    and a deadline whatever its framing, UTF-8 checked on the inference routes, and their fast path (see the
    module docstring)."""

    def __init__(
        self,
        app: Any,
        max_body_bytes: int,
        dataplane: DataPlane | None = None,
        *,
        fast_path: bool = True,
        read_timeout: float = 30.0,
        payload_log: PredictorLogger | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.dataplane = dataplane
        self.fast_path = fast_path
        self.read_timeout = read_timeout
        self.payload_log = payload_log

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[Any]], send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _Headers.of(scope)
        request = logs.RequestScope(logs.request_id_from(headers.request_id), "rest")
        token = logs.CURRENT.set(request)
        status = 500
        id_header = (b"x-request-id", request.request_id.encode("ascii"))

        async def send_with_id(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message["headers"] = [*message.get("headers", []), id_header]
            await send(message)

        try:
            if not await self._handle(scope, headers, receive, send_with_id, request.request_id):
                status = CLIENT_CLOSED_REQUEST
        finally:
            logs.CURRENT.reset(token)
            _log_request(request, scope.get("method", ""), scope.get("path", ""), status)

    async def _handle(
        self,
        scope: dict[str, Any],
        headers: _Headers,
        receive: Callable[[], Awaitable[Any]],
        send: Any,
        request_id: str,
    ) -> bool:
        """Read the body, check it, answer on the fast path or through KServe; False when the client went away
        before its body arrived (nothing to answer, and nothing went wrong here)."""
        length = headers.length
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            await _too_large(f"request body of {int(length):,} bytes", self.max_body_bytes)(scope, receive, send)
            return True
        body = b""
        if headers.chunked or (length is not None and length != b"0"):
            read = await self._read_body(receive)
            if isinstance(read, _Unread):
                if read.status is None:
                    logs.note(error=read.message)
                    return False
                await _error_response(read.status, {"error": read.message}, close=True)(scope, receive, send)
                return True
            body = read
            receive = _replay(body, receive)
        json_body = headers.plain and (headers.content_type is None or headers.content_type.startswith(_JSON))
        if json_body and body and _INFERENCE_PATH.search(scope.get("path", "")):
            problem = utf8_problem(body)
            if problem is not None:
                log.warning("invalid input: %s", problem)
                await _error_response(400, {"error": problem})(scope, receive, send)
                return True
            if self.payload_log is not None and scope["method"] == "POST":
                answer = _Captured(send)
                await self._answer(scope, headers, body, receive, answer)
                # after the answer has gone out: logging never delays it
                self.payload_log.log(request_id, body, answer.status, answer.body())
                return True
        await self._answer(scope, headers, body, receive, send)
        return True

    async def _answer(
        self, scope: dict[str, Any], headers: _Headers, body: bytes, receive: Callable[[], Awaitable[Any]], send: Any
    ) -> None:
        """The fast path's answer when it takes the request, else KServe's."""
        if (
            self.fast_path
            and headers.plain
            and scope["method"] == "POST"
            and headers.content_type in (None, _JSON)
            and await self._fast(scope, body, receive, send)
        ):
            return
        await self.app(scope, receive, send)

    async def _read_body(self, receive: Callable[[], Awaitable[Any]]) -> bytes | _Unread:
        """The whole body, or why not: larger than the cap (413, counted as it streams in, so a chunked body is
        never held beyond the cap), not complete within the read timeout (408), or the client went away."""
        body = bytearray()
        try:
            async with asyncio.timeout(self.read_timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return _Unread(None, f"client disconnected after {len(body):,} bytes of the request body")
                    part: bytes = message.get("body", b"")
                    if not body and not message.get("more_body", False) and len(part) <= self.max_body_bytes:
                        return part  # the whole body in one message (the usual case): no copy
                    body += part
                    if len(body) > self.max_body_bytes:
                        what = f"request body of more than {len(body):,} bytes"
                        return _Unread(413, _too_large_message(what, self.max_body_bytes))
                    if not message.get("more_body", False):
                        return bytes(body)
        except TimeoutError:
            return _Unread(
                408,
                f"request body not received within {self.read_timeout:g} s ({len(body):,} bytes arrived; "
                "FRAUD_SERVE_READ_TIMEOUT)",
            )

    def _route(self, path: str) -> tuple[str, bool, Any] | None:
        """(model name, is V2, the model) of an inference route to a loaded predictor with ``infer_rest``."""
        if path.startswith("/v1/"):
            match, v2 = _V1_PREDICT.fullmatch(path), False
        elif path.startswith("/v2/"):
            match, v2 = _V2_INFER.fullmatch(path), True
        else:
            return None
        if match is None or self.dataplane is None:
            return None
        model = self.dataplane.model_registry.get_model(match.group(1))
        if not hasattr(model, "infer_rest") or not model.ready:
            return None  # unknown (404) or not ready (503): KServe's routes answer
        return match.group(1), v2, model

    async def _fast(self, scope: dict[str, Any], body: bytes, receive: Callable[[], Awaitable[Any]], send: Any) -> bool:
        """Answer a V1 predict or V2 infer request for a loaded model; False when it is not one."""
        route = self._route(scope["path"])
        if route is None:
            return False
        model_name, v2, model = route
        try:
            # valid, decoded and checked at once
            payload: Any = model.decode_v2(body) if v2 else model.decode_v1(body)
        except RecursionError:  # nested past the interpreter's limit: orjson below says so
            payload = None
        if payload is not None:
            await _answer(scope, receive, send, model.infer_rest, payload)
            return True
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            # V1: KServe's decoder refuses it with this message; V2: FastAPI's wording comes from its own route,
            # except for depth, which Python's json parser would meet as a RecursionError
            message = _json_failure(str(exc))
            payload = None if v2 and message != NESTED_TOO_DEEPLY else RequestError(message)
        else:
            if v2:
                payload = infer_request_from_json(payload, model_name)
            elif isinstance(payload, dict) and is_structured_cloudevent(payload):
                payload = None
        if payload is None:  # not plainly well-formed: KServe's routes give their exact answers
            await self.app(scope, receive, send)
            return True
        await _answer(scope, receive, send, model.infer_rest, payload)
        return True


CLIENT_CLOSED_REQUEST: Final = 499
"""What the request line records when the client disconnected before its body arrived (nginx's code for it)."""
_INFERENCE_PATH: Final = re.compile(r"^/v[12]/models/[^/]+(:predict|/infer)$")


_JSON: Final = b"application/json"


@dataclass(frozen=True)
class _Headers:
    """What the middleware reads from a request's headers."""

    request_id: bytes | None = None
    length: bytes | None = None
    content_type: bytes | None = None
    chunked: bool = False
    plain: bool = True
    """No CloudEvent and no binary V2 header: the fast path may take it."""

    @classmethod
    def of(cls, scope: dict[str, Any]) -> _Headers:
        found: dict[str, Any] = {}
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                found["request_id"] = value
            elif key == b"content-length":
                found["length"] = value
            elif key == b"content-type":
                found["content_type"] = value
            elif key == b"transfer-encoding":
                found["chunked"] = True
            elif key.startswith(b"ce-") or key == b"inference-header-content-length":
                found["plain"] = False
        return cls(**found)


class _Captured:
    """An ASGI ``send`` that passes every message on and keeps the status and body (for the payload log)."""

    def __init__(self, send: Any) -> None:
        self.send = send
        self.status = 500
        self.parts: list[bytes] = []

    async def __call__(self, message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
        elif message["type"] == "http.response.body":
            self.parts.append(message.get("body", b""))
        await self.send(message)

    def body(self) -> bytes:
        return self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)


@dataclass(frozen=True)
class _Unread:
    """A request body that was not read whole: the status to answer (None: the client is gone) and why."""

    status: int | None
    message: str


def _too_large_message(what: str, limit: int) -> str:
    return f"{what} exceeds {limit:,} bytes (FRAUD_SERVE_MAX_BODY_BYTES); send smaller batches"


def _too_large(what: str, limit: int) -> ORJSONResponse:
    return _error_response(413, {"error": _too_large_message(what, limit)}, close=True)


async def _answer(
    scope: dict[str, Any], receive: Callable[[], Awaitable[Any]], send: Any, infer: Any, payload: Any
) -> None:
    """Run the predictor on a decoded body and send its answer, or the error KServe's handlers would send."""
    try:
        if isinstance(payload, RequestError):
            raise payload
        answer = await infer(payload)
    except InvalidInput as exc:
        await (await invalid_input_handler(_NO_REQUEST, exc))(scope, receive, send)
    except (ModelNotReady, ServerNotReady) as exc:
        await (await not_ready_handler(_NO_REQUEST, exc))(scope, receive, send)
    except Exception as exc:  # what KServe's generic handler answers: a 500 naming the error, and a traceback
        logs.note(error=f"{type(exc).__name__}: {exc}")
        await (await generic_exception_handler(_NO_REQUEST, exc))(scope, receive, send)
    else:
        content = orjson.dumps(answer, option=_ORJSON_OPTIONS)
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(content))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": content})


_V1_PREDICT: Final = re.compile(r"/v1/models/([^/]+):predict")
_V2_INFER: Final = re.compile(r"/v2/models/([^/]+)/infer")
_ORJSON_OPTIONS: Final = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
"""What FastAPI's ``ORJSONResponse`` (KServe's V1 answers) uses."""
_NO_REQUEST: Final[Any] = None
"""The exception handlers' request argument, which none of them reads."""
_PARAMETER_TYPES: Final = frozenset({str, int, float, bool})


def _replay(body: bytes, receive: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
    """A ``receive`` that hands the already-read body to the app once, then waits as the original would."""
    pending = True

    async def replay() -> Any:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _parameters_ok(parameters: object) -> bool:
    return type(parameters) is dict and all(type(value) in _PARAMETER_TYPES for value in parameters.values())


def infer_request_from_json(payload: object, model_name: str) -> InferRequest | None:
    """The ``InferRequest`` KServe would build from this V2 JSON body, when the body is one its pydantic model
    accepts exactly as sent (strict types, JSON outputs); None sends it through KServe's own route instead."""
    if type(payload) is not dict:
        return None
    request_id = payload.get("id")
    parameters = payload.get("parameters")
    inputs = payload.get("inputs")
    outputs = payload.get("outputs")
    if (
        (request_id is not None and type(request_id) is not str)
        or (parameters is not None and (not _parameters_ok(parameters) or "binary_data_output" in parameters))
        or type(inputs) is not list
        or (outputs is not None and type(outputs) is not list)
    ):
        return None
    tensors: list[InferInput] = []
    for item in inputs:
        if type(item) is not dict:
            return None
        name, shape, datatype, data = item.get("name"), item.get("shape"), item.get("datatype"), item.get("data")
        extra = item.get("parameters")
        if (
            type(name) is not str
            or type(datatype) is not str
            or type(shape) is not list
            or type(data) is not list
            or not all(type(size) is int for size in shape)
            or (extra is not None and not _parameters_ok(extra))
            or (datatype == "FP16" and data)
        ):
            return None
        tensors.append(InferInput(name=name, shape=shape, datatype=datatype, data=data, parameters=extra or {}))
    requested: list[RequestedOutput] | None = None
    if outputs:
        requested = []
        for output in outputs:
            if type(output) is not dict or type(output.get("name")) is not str or output.get("parameters"):
                return None
            requested.append(RequestedOutput(name=output["name"], parameters={}))
    return InferRequest(
        request_id=request_id,
        model_name=model_name,
        infer_inputs=tensors,
        parameters=parameters,
        request_outputs=requested,
    )


def _log_request(request: logs.RequestScope, method: str, path: str, status: int | str) -> None:
    elapsed = request.elapsed_ms()
    # 503 is what probes get while the model loads: expected, not an error
    level = logging.ERROR if isinstance(status, int) and status >= 500 and status != 503 else logging.INFO
    fields = {
        "event": "request",
        "request_id": request.request_id,
        "protocol": request.protocol,
        "method": method,
        "path": path,
        "status": status,
        "duration_ms": elapsed,
        **request.fields,
    }
    request_log.log(level, "%s %s %s %.3f ms", method, path, status, elapsed, extra={"fields": fields})


class _NoSignalUvicorn(kserve_compat.RefreshingServer):  # type: ignore[misc]
    """uvicorn's server (with KServe's certificate refresh) minus its own signal capture: the model server
    stops REST and gRPC together from one handler."""

    @contextmanager
    def capture_signals(self) -> Any:
        yield


class FraudRESTServer(RESTServer):  # type: ignore[misc]
    """KServe's REST server bound to ``host``, with the middleware and error handlers above."""

    def __init__(
        self,
        *args: Any,
        host: str,
        max_body_bytes: int,
        fast_path: bool = True,
        read_timeout: float = 30.0,
        payload_log: PredictorLogger | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.payload_log = payload_log
        self.config.host = host
        self.config.access_log = False  # the request line replaces it
        self.uvicorn = _NoSignalUvicorn(self.config)
        kserve_compat.replace_uvicorn_server(self, self.uvicorn)
        self.max_body_bytes = max_body_bytes
        self.fast_path = fast_path
        self.read_timeout = read_timeout

    def create_application(self) -> None:
        app: FastAPI = import_from_string(FASTAPI_APP_IMPORT_STRING)
        kserve_compat.register_endpoints(self, app)
        kserve_compat.add_exception_handlers(self, app)
        app.add_exception_handler(InvalidInput, invalid_input_handler)
        app.add_exception_handler(RequestValidationError, request_validation_handler)
        app.add_exception_handler(StarletteHTTPException, http_error_handler)
        for not_ready in (ModelNotReady, ServerNotReady):
            app.add_exception_handler(not_ready, not_ready_handler)
        app.add_exception_handler(ModelNotFound, not_found_handler)
        # in front of FastAPI's whole stack, its error middleware included (so even a 500 carries the request id)
        self.config.app = RequestMiddleware(
            app,
            self.max_body_bytes,
            self.dataplane,
            fast_path=self.fast_path,
            read_timeout=self.read_timeout,
            payload_log=self.payload_log,
        )

    def request_stop(self, *, force: bool = False) -> None:
        """Stop accepting connections and let in-flight requests finish (``force`` abandons them)."""
        if force:
            self.uvicorn.force_exit = True
        self.uvicorn.should_exit = True


# -------------------------------------------------------------------------------------------------- gRPC


class QuietExceptionToStatusInterceptor(ExceptionToStatusInterceptor):  # type: ignore[misc]
    """KServe's mapping of errors to gRPC codes, minus the traceback for a client's invalid input."""

    async def handle_exception(self, ex: Exception, request_or_iterator: Any, context: Any, method_name: str) -> None:
        if isinstance(ex, InvalidInput):
            log.warning("invalid input: %s", ex)
            logs.note(error=str(ex))
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(ex))
        await super().handle_exception(ex, request_or_iterator, context, method_name)


class RequestLogInterceptor(aio.ServerInterceptor):  # type: ignore[misc]
    """One latency line per unary gRPC call, with the caller's ``x-request-id`` metadata or a fresh id."""

    async def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        behaviour = handler.unary_unary
        method = handler_call_details.method
        metadata = dict(handler_call_details.invocation_metadata or ())

        async def logged(request: Any, context: Any) -> Any:
            scope = logs.RequestScope(logs.request_id_from(metadata.get("x-request-id")), "grpc")
            token = logs.CURRENT.set(scope)
            status = "OK"
            try:
                if isinstance(request, _Undecodable):
                    message = request.message(method)
                    log.warning("invalid input: %s", message)
                    logs.note(error=message)
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)
                result = behaviour(request, context)
                return await result if inspect.isawaitable(result) else result
            except BaseException:
                code = context.code() if hasattr(context, "code") else None
                status = code.name if isinstance(code, grpc.StatusCode) else "ERROR"
                raise
            finally:
                logs.CURRENT.reset(token)
                _log_request(scope, "RPC", method, status)

        return grpc.unary_unary_rpc_method_handler(
            logged,
            request_deserializer=_tolerant(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )


@dataclass(frozen=True)
class _Undecodable:
    """A gRPC request whose bytes did not parse: answered INVALID_ARGUMENT instead of gRPC's UNKNOWN."""

    error: Exception

    def message(self, method: str) -> str:
        return (
            f"malformed {method.rsplit('/', 1)[-1]} request: it does not parse as its protobuf message "
            f"({type(self.error).__name__}: {self.error}); protobuf string fields (id, model_name, input names, "
            "string parameters) must be valid UTF-8, text tensors go in bytes_contents"
        )


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """``deserializer`` returning `_Undecodable` instead of raising, so the call is answered by the interceptor."""
    if deserializer is None:
        return None

    def deserialize(raw: bytes) -> Any:
        try:
            return deserializer(raw)
        except Exception as exc:
            return _Undecodable(exc)

    return deserialize


def grpc_address(host: str, port: int) -> str:
    """``host:port`` for gRPC; 0.0.0.0 keeps KServe's dual-stack ``[::]``, IPv6 literals get brackets."""
    if host in {"0.0.0.0", "::"}:  # noqa: S104 - binding all interfaces is what a pod asks for
        return f"[::]:{port}"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class FraudGRPCServer(GRPCServer):  # type: ignore[misc]
    """KServe's gRPC server (same servicer and message limits) on ``host``, with the interceptors above."""

    def __init__(self, *args: Any, host: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.host = host

    async def start(self, max_workers: int) -> None:
        parts = kserve_compat.grpc_parts(self)
        servicer = InferenceServicer(parts.data_plane, parts.model_repository_extension)
        server = aio.server(
            futures.ThreadPoolExecutor(max_workers=max_workers),
            interceptors=(RequestLogInterceptor(), QuietExceptionToStatusInterceptor()),
            options=[
                ("grpc.max_send_message_length", parts.options.get("grpc_max_send_message_length")),
                ("grpc.max_receive_message_length", parts.options.get("grpc_max_receive_message_length")),
            ],
        )
        kserve_compat.set_grpc_server(self, server)  # KServe's stop() stops it
        grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, server)
        address = grpc_address(self.host, parts.port)
        server.add_insecure_port(address)
        log.info("gRPC server listening on %s with %d worker threads", address, max_workers)
        await server.start()
        await server.wait_for_termination()


# ------------------------------------------------------------------------------------------ model server


def _run(main: Coroutine[Any, Any, None], event_loop: str) -> None:
    """Run the servers on uvloop when asked (``--event-loop auto|uvloop``) and installed, else on asyncio.

    KServe's ``--event-loop`` only reaches uvicorn's own ``run()``; KServe then starts the servers with
    ``asyncio.run`` on the default loop, so the flag has no effect there. uvloop halves the cost of a thread
    hop and of socket I/O per request.
    """
    if event_loop in {"auto", "uvloop"}:
        try:
            import uvloop
        except ImportError:
            if event_loop == "uvloop":
                raise
        else:
            uvloop.run(main)
            return
    asyncio.run(main)


class FraudModelServer(ModelServer):  # type: ignore[misc]
    """`kserve.ModelServer` with the bind address, readiness, errors, logging and shutdown described above."""

    def __init__(
        self,
        *,
        host: str,
        http_port: int,
        grpc_port: int,
        enable_grpc: bool = True,
        max_body_bytes: int = 8 * 1024 * 1024,
        grace_period: float = 30.0,
        fast_path: bool = True,
        read_timeout: float = 30.0,
        grpc_options: dict[str, Any] | None = None,
        payload_log: PredictorLogger | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            http_port=http_port,
            grpc_port=grpc_port,
            workers=1,
            enable_grpc=enable_grpc,
            enable_latency_logging=False,
            grace_period=int(max(1, round(grace_period))),
            **kwargs,
        )
        self.dataplane = FraudDataPlane(model_registry=self.registered_models)
        self.host = host
        self.max_body_bytes = max_body_bytes
        self.fast_path = fast_path
        self.read_timeout = read_timeout
        self.grpc_options = grpc_options or {}
        self.payload_log = payload_log
        self.rest_server: FraudRESTServer | None = None
        self.grpc_server: FraudGRPCServer | None = None
        self._stopping = False
        self._grpc_stopping: asyncio.Future[None] | None = None

    def start(self, models: list[BaseKServeModel]) -> None:
        """Register the models (ready or not), start their loading, serve until a stop signal, then unload."""
        for model in models:
            self.register_model(model)
            model.start()
        self.rest_server = FraudRESTServer(
            FASTAPI_APP_IMPORT_STRING,
            self.dataplane,
            self.model_repository_extension,
            self.http_port,
            host=self.host,
            max_body_bytes=self.max_body_bytes,
            fast_path=self.fast_path,
            read_timeout=self.read_timeout,
            payload_log=self.payload_log,
            access_log_format=self.access_log_format,
            workers=1,
            grace_period=self.grace_period,
            event_loop=self.event_loop,
            timeout_keep_alive=self.timeout_keep_alive,
            ssl_certfile=self.ssl_certfile,
            ssl_keyfile=self.ssl_keyfile,
        )
        servers = [self.rest_server.start()]
        if self.enable_grpc:
            self.grpc_server = FraudGRPCServer(
                self.grpc_port,
                self.dataplane,
                self.model_repository_extension,
                kwargs=self.grpc_options,
                grace_period=self.grace_period,
                host=self.host,
            )
            servers.append(self.grpc_server.start(self.max_threads))
        log.info(
            "REST on http://%s:%d%s",
            self.host,
            self.http_port,
            f", gRPC on {grpc_address(self.host, self.grpc_port)}" if self.enable_grpc else "",
        )
        _run(self._serve_until_stopped(servers), self.event_loop)

    async def _serve_until_stopped(self, servers: list[Awaitable[Any]]) -> None:
        self.setup_event_loop()
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, self.stop, sig)
        try:
            await asyncio.gather(*servers)
        finally:
            if self.payload_log is not None:
                await self.payload_log.sink.drain(PAYLOAD_LOG_DRAIN_S)
            for name in list(self.registered_models.get_models()):
                self.registered_models.unload(name)
            log.info("model server stopped")

    def stop(self, sig: int) -> None:
        """First signal: stop accepting and drain; a second one abandons in-flight requests."""
        force = self._stopping
        self._stopping = True
        name = signal.Signals(sig).name
        if force:
            log.warning("%s again: stopping now, abandoning in-flight requests", name)
        else:
            log.info("%s: no new requests; draining in-flight ones (up to %d s)", name, self.grace_period)
        if self.rest_server is not None:
            self.rest_server.request_stop(force=force)
        if self.grpc_server is not None and not force:
            self._grpc_stopping = asyncio.ensure_future(self.grpc_server.stop(sig))
