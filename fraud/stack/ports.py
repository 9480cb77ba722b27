"""Which TCP ports are free, and who holds the ones that are not.

`up` must refuse, with the port's name, when something else listens where a server of ours would go; SeaweedFS
would otherwise move a busy gRPC port elsewhere without a word, and uvicorn would exit with an address error
buried in its log. Holders are found with psutil (the system's socket table where this user may read it, else
each of this user's processes' own sockets).
"""

from __future__ import annotations

import contextlib
import errno
import secrets
import socket
from collections.abc import Iterable

import psutil

from fraud.errors import StackError
from fraud.stack.process import command_line


def _listening_entries() -> list[tuple[str, int, int | None]]:
    """Every listening TCP socket this user can see as (address, port, pid or None when the owner is hidden)."""
    try:
        connections = [(c.laddr, c.status, c.pid) for c in psutil.net_connections(kind="tcp")]
    except psutil.AccessDenied:  # macOS lists the whole table to root only: read each visible process instead
        connections = []
        for process in psutil.process_iter():
            with contextlib.suppress(psutil.Error):
                connections += [(c.laddr, c.status, process.pid) for c in process.connections(kind="tcp")]
    return [
        (str(laddr.ip), int(laddr.port), pid)
        for laddr, status, pid in connections
        if status == psutil.CONN_LISTEN and isinstance(laddr, tuple) and len(laddr) == 2
    ]


def port_is_free(port: int, host: str) -> bool:
    """True when nothing listens on the port (on any address) and it can be bound on ``host``.

    Binding alone would miss a listener on another address that the server's own check (SeaweedFS also tries
    the wildcard address) would trip over; the listen table alone would miss a socket bound but not listening.
    """
    if any(entry_port == port for _, entry_port, _ in _listening_entries()):
        return False
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno in {errno.EADDRINUSE, errno.EACCES}:
                return False
            raise
    return True


def listener_pids(port: int) -> set[int]:
    """Processes (of this user, as far as the system lets us see) with a listening socket on the port."""
    return {pid for _, entry_port, pid in _listening_entries() if entry_port == port and pid is not None}


def describe_holder(port: int) -> str:
    """'pid 123: python -m http.server' for the process holding a port, for error messages."""
    holders = sorted(listener_pids(port))
    if not holders:
        return "a process this user cannot see"
    pid = holders[0]
    command = " ".join(command_line(pid).split()) or "?"  # one line, whatever the arguments contain
    return f"pid {pid}: {command[:80]}"


def listening_addresses(pids: Iterable[int]) -> list[tuple[str, int]]:
    """The (address, port) pairs the given processes listen on; lets tests prove loopback-only binding."""
    wanted = set(pids)
    return sorted({(address, port) for address, port, pid in _listening_entries() if pid in wanted})


def pick_free_ports(count: int, host: str, *, with_grpc_offset: int | None = None, low: int = 15000) -> list[int]:
    """Distinct free ports; with ``with_grpc_offset`` each port plus that offset is free (and distinct) too.

    Ports come from below the kernel's ephemeral range (32768+), so an outgoing connection cannot take one
    between the check and the server's bind, and port + 10000 still fits SeaweedFS's gRPC convention.
    """
    high = 32768 - (with_grpc_offset or 0)
    taken: set[int] = set()
    chosen: list[int] = []
    candidates = list(range(low, high))
    secrets.SystemRandom().shuffle(candidates)
    for port in candidates:
        needed = [port] if with_grpc_offset is None else [port, port + with_grpc_offset]
        if any(p in taken for p in needed) or not all(port_is_free(p, host) for p in needed):
            continue
        taken.update(needed)
        chosen.append(port)
        if len(chosen) == count:
            return chosen
    raise StackError(f"found no {count} free ports between {low} and {high}; stop some servers and retry")
