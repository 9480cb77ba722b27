"""KServe's private symbols: the pieces of its REST and gRPC servers that `serving.server` rebuilds.

KServe 0.21 offers no hook for the bind address, the exception handlers, uvicorn's signal capture or the gRPC
interceptors, so `serving.server` subclasses its server classes and reuses their parts: the endpoint and handler
registration of ``RESTServer``, the uvicorn server it wraps (``_RefreshingServer``: uvicorn plus certificate
refresh), and the state ``GRPCServer`` keeps for ``start``/``stop``. Everything the predictor does per request
goes through KServe's public API (routes, ``DataPlane``, ``Model`` hooks); only server construction is here.

Imported by the serving layer only. Written for kserve 0.21.0; ``SYMBOLS`` lists what this relies on (checked
by ``tests/compat``).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Final

import uvicorn
from kserve.protocol.grpc.server import GRPCServer
from kserve.protocol.rest.server import RESTServer, _RefreshingServer

from fraud.compat import PrivateSymbol, expect

DISTRIBUTIONS: Final = ("kserve",)
WRITTEN_FOR: Final = "0.21.0"

RefreshingServer: Final = _RefreshingServer
"""KServe's uvicorn server (``uvicorn.Server`` plus SSL certificate refresh), to subclass."""


def register_endpoints(rest: RESTServer, app: Any) -> None:
    """KServe's routes (V1, V2, ``/metrics``, model repository) on ``app``, as ``RESTServer`` registers them."""
    rest._register_endpoints(app)


def add_exception_handlers(rest: RESTServer, app: Any) -> None:
    """KServe's exception handlers on ``app`` (register yours after them to override)."""
    rest._add_exception_handlers(app)


def uvicorn_server(rest: RESTServer) -> uvicorn.Server:
    """The uvicorn server ``RESTServer.start`` serves with."""
    server: uvicorn.Server = rest._server
    return server


def replace_uvicorn_server(rest: RESTServer, server: uvicorn.Server) -> None:
    """Make ``RESTServer.start`` serve with ``server`` instead of the one it built."""
    rest._server = server


@dataclass(frozen=True)
class GRPCParts:
    """What a ``GRPCServer`` was built with, to build the same servicer and server."""

    port: int
    data_plane: Any
    model_repository_extension: Any
    options: dict[str, Any]
    """The ``kwargs`` it was given (``grpc_max_send_message_length``, ``grpc_max_receive_message_length``)."""


def grpc_parts(server: GRPCServer) -> GRPCParts:
    return GRPCParts(server._port, server._data_plane, server._model_repository_extension, dict(server._kwargs))


def set_grpc_server(server: GRPCServer, aio_server: Any) -> None:
    """Hand the running ``grpc.aio`` server to ``GRPCServer`` so that its ``stop`` stops it."""
    server._server = aio_server


# ------------------------------------------------------------------------------------------------ contract


def _params(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


def _check_refreshing_server() -> None:
    expect(issubclass(_RefreshingServer, uvicorn.Server), "_RefreshingServer is no longer a uvicorn.Server")
    expect(
        callable(getattr(uvicorn.Server, "capture_signals", None)),
        "uvicorn.Server.capture_signals (overridden to keep signals for the model server) is gone",
    )


def _rest() -> RESTServer:
    from kserve.model_repository import ModelRepository
    from kserve.protocol.dataplane import DataPlane
    from kserve.protocol.model_repository_extension import ModelRepositoryExtension

    repository = ModelRepository()
    return RESTServer("kserve.model_server:app", DataPlane(repository), ModelRepositoryExtension(repository), 0)


def _check_register_endpoints() -> None:
    from fastapi import FastAPI

    expect(_params(RESTServer._register_endpoints) == ["self", "app"], "_register_endpoints(self, app) changed")
    app = FastAPI()
    register_endpoints(_rest(), app)
    paths = set(app.openapi()["paths"])
    for path in ("/v1/models/{model_name}:predict", "/v2/models/{model_name}/infer", "/metrics"):
        expect(path in paths, f"no route {path} after _register_endpoints")


def _check_exception_handlers() -> None:
    from fastapi import FastAPI
    from kserve.errors import InvalidInput

    expect(_params(RESTServer._add_exception_handlers) == ["self", "app"], "_add_exception_handlers(self, app) changed")
    app = FastAPI()
    add_exception_handlers(_rest(), app)
    expect(InvalidInput in app.exception_handlers, "no InvalidInput handler after _add_exception_handlers")


def _check_uvicorn_server() -> None:
    rest = _rest()
    expect(isinstance(uvicorn_server(rest), _RefreshingServer), "RESTServer._server is not a _RefreshingServer")
    expect("self._server.serve()" in inspect.getsource(RESTServer.start), "RESTServer.start no longer serves _server")


def _check_grpc_parts() -> None:
    from kserve.model_repository import ModelRepository
    from kserve.protocol.dataplane import DataPlane
    from kserve.protocol.model_repository_extension import ModelRepositoryExtension

    repository = ModelRepository()
    plane, extension = DataPlane(repository), ModelRepositoryExtension(repository)
    server = GRPCServer(1234, plane, extension, {"grpc_max_send_message_length": 7})
    parts = grpc_parts(server)
    expect(parts.port == 1234 and parts.data_plane is plane, "GRPCServer keeps its port/data plane elsewhere")
    expect(parts.model_repository_extension is extension, "GRPCServer keeps its repository extension elsewhere")
    expect(parts.options == {"grpc_max_send_message_length": 7}, "GRPCServer keeps its kwargs elsewhere")
    expect("self._server.stop" in inspect.getsource(GRPCServer.stop), "GRPCServer.stop no longer stops _server")


SYMBOLS: Final = tuple(
    PrivateSymbol(DISTRIBUTIONS, WRITTEN_FOR, name, "serving.server", check)
    for name, check in (
        ("kserve.protocol.rest.server._RefreshingServer", _check_refreshing_server),
        ("kserve.protocol.rest.server.RESTServer._register_endpoints", _check_register_endpoints),
        ("kserve.protocol.rest.server.RESTServer._add_exception_handlers", _check_exception_handlers),
        ("kserve.protocol.rest.server.RESTServer._server", _check_uvicorn_server),
        (
            "kserve.protocol.grpc.server.GRPCServer._port/_data_plane/_model_repository_extension/_kwargs/_server",
            _check_grpc_parts,
        ),
    )
)
