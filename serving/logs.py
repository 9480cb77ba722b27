"""Structured logs for the predictor: one JSON object per line, and one latency line per request.

Log collectors in a cluster (Loki, Cloud Logging, Elasticsearch) index JSON fields without parsing rules, so every
record is a JSON object with ``ts``, ``level``, ``logger``, ``msg`` and, inside a request, its ``request_id``.

Each request gets a small mutable scope (`RequestScope`) in a context variable: the REST middleware or the gRPC
interceptor opens it, the predictor adds what it learnt (rows, model version, decisions) and the opener writes the
request's single latency line when it ends. A dict in the context variable (rather than a value set later) is
what lets a thread the predictor hands a large batch to still write into it.

Only the entrypoint (`serving.__main__`) calls `configure_logging`; modules log through ``getLogger(__name__)``.
"""

from __future__ import annotations

import logging
import logging.config
import re
import time
import uuid
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import orjson

REQUEST_LOGGER: Final = "serving.requests"
_REQUEST_ID_OK: Final = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")


@dataclass
class RequestScope:
    """What one request did, filled in as it goes and logged once when it ends."""

    request_id: str
    protocol: str
    started: float = field(default_factory=time.perf_counter)
    fields: dict[str, Any] = field(default_factory=dict)

    def elapsed_ms(self) -> float:
        return round((time.perf_counter() - self.started) * 1000.0, 3)


CURRENT: ContextVar[RequestScope | None] = ContextVar("fraud_request_scope", default=None)


def request_id_from(value: str | bytes | None) -> str:
    """The caller's ``x-request-id`` when it is a sane token, else a fresh one (never echo arbitrary bytes)."""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if value and _REQUEST_ID_OK.match(value):
        return value
    return uuid.uuid4().hex


def note(**fields: Any) -> None:
    """Add fields to the current request's latency line (no-op outside a request)."""
    scope = CURRENT.get()
    if scope is not None:
        scope.fields.update(fields)


def current_request_id() -> str | None:
    scope = CURRENT.get()
    return scope.request_id if scope is not None else None


class JsonFormatter(logging.Formatter):
    """One JSON object per record; ``extra={"fields": {...}}`` adds structured fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = current_request_id()
        if request_id is not None:
            data["request_id"] = request_id
        extra = record.__dict__.get("fields")
        if isinstance(extra, dict):
            data.update(extra)
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(data, default=str).decode("utf-8")


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stderr for every logger; quiets the per-request noise of uvicorn and KServe.

    uvicorn's access log and KServe's trace logger each write their own line per request; the request line of
    `RequestScope` replaces both (it has the status, the latency and the request id).

    A record costs what it collects: the caller's file and line (a walk up the stack), the thread and process
    names. No field of these JSON lines uses them, so they are not collected (the logging HOWTO's
    "Optimization" switches), which makes the per-request line several times cheaper.
    """
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"json": {"()": JsonFormatter}},
            "handlers": {
                "stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
            },
            "root": {"handlers": ["stderr"], "level": level},
            "loggers": {
                "uvicorn.access": {"level": "WARNING"},
                "kserve.trace": {"level": "WARNING"},
                "mlflow": {"level": "WARNING"},
                "urllib3": {"level": "WARNING"},
            },
        }
    )
    logging.captureWarnings(True)  # library deprecation warnings become JSON records too, not raw stderr text
