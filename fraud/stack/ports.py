"""Which TCP ports are free, and who holds the ones that are not.

`up` must refuse, with the port's name, when something else listens where a server of ours would go; SeaweedFS
would otherwise move a busy gRPC port elsewhere without a word, and uvicorn would exit with an address error
buried in its log. Holders are found from ``/proc/net/tcp{,6}`` and the sockets in ``/proc/<pid>/fd`` (no psutil).
"""

from __future__ import annotations

import contextlib
import errno
import secrets
import socket
from collections.abc import Iterable
from pathlib import Path

from fraud.errors import StackError
from fraud.stack.process import command_line

_PROC = Path("/proc")
_LISTEN = "0A"


def _listening_entries() -> list[tuple[str, int, int]]:
    """Every listening TCP socket in this network namespace as (address, port, socket inode)."""
    entries = []
    for table, width in (("tcp", 8), ("tcp6", 32)):
        try:
            lines = (_PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != _LISTEN:
                continue
            address_hex, port_hex = fields[1].split(":")
            entries.append((_decode_address(address_hex, width), int(port_hex, 16), int(fields[9])))
    return entries


def _decode_address(address_hex: str, width: int) -> str:
    """/proc/net/tcp stores addresses as host-order 32-bit words in hex."""
    if width == 8:
        return socket.inet_ntop(socket.AF_INET, int(address_hex, 16).to_bytes(4, "little"))
    words = [int(address_hex[i : i + 8], 16).to_bytes(4, "little") for i in range(0, 32, 8)]
    return socket.inet_ntop(socket.AF_INET6, b"".join(words))


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in (_PROC / str(pid) / "fd").iterdir():
            with contextlib.suppress(OSError):
                target = fd.readlink().name
                if target.startswith("socket:["):
                    inodes.add(int(target[8:-1]))
    return inodes


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
    """Processes (of this user, as far as /proc lets us see) with a listening socket on the port."""
    inodes = {inode for _, entry_port, inode in _listening_entries() if entry_port == port}
    if not inodes:
        return set()
    return {
        int(entry.name)
        for entry in _PROC.iterdir()
        if entry.name.isdigit() and _socket_inodes(int(entry.name)) & inodes
    }


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
    inodes: set[int] = set()
    for pid in pids:
        inodes |= _socket_inodes(pid)
    return sorted((address, port) for address, port, inode in _listening_entries() if inode in inodes)


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
