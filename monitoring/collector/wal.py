"""The write-ahead log: an event is acknowledged only after its record is on disk (``fdatasync``).

One ``fdatasync`` costs ~4 ms on this machine, so one per event would cap the collector near 250 events/s. The
log therefore commits in groups: callers on the event loop append records; one writer thread takes everything
appended since its last write and writes it with one synchronous ``write`` (the segment is opened ``O_DSYNC``:
the call returns once the data and the file size are on disk, as ``write`` + ``fdatasync`` would, in one system
call and one wait for the GIL fewer), then hands the whole group back to the event loop in one call
(``on_durable``, or ``on_failed`` with the error). Under load a group holds dozens of events; when idle it holds
one, so latency stays one disk flush. No future per record: the owner answers each event from ``on_durable``.

Each group is one record: its items' payloads (each one msgpack value) as one msgpack array (`group_record`),
so a reader decodes a whole group with one call (`decode_group`) instead of one call per event; replaying two
million events is then bound by what is done with them, not by their framing.

Records are framed as ``length (u32) | crc32 (u32) | payload``. A crash can leave a torn record only at the end
of the segment being written; readers stop at the first record that is short or fails its checksum (it was
never acknowledged). After a failed write the segment is cut back to its last good length before anything else
is written, so a torn record never sits in front of an acknowledged one.

Segments are files ``wal-<first seq>.log``; a new one starts once the current one passes ``segment_bytes``.
The owner deletes a segment once everything in it is in the object store (`WriteAheadLog.delete`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

log = logging.getLogger(__name__)

_FRAME: Final = struct.Struct("<II")
_GROUP_HEADER: Final = struct.Struct(">BI")
GROUP_MARK: Final = 0xDD
"""msgpack's array-32 type byte: a record starting with it is a group (a single legacy payload never does)."""
MAX_RECORD: Final = 1 << 30
SEGMENT_GLOB: Final = "wal-*.log"


def frame(payload: bytes) -> bytes:
    return _FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def group_record(payloads: list[bytes]) -> bytes:
    """One record holding ``payloads`` (each one msgpack value): a msgpack array of them."""
    return _GROUP_HEADER.pack(GROUP_MARK, len(payloads)) + b"".join(payloads)


def read_frames(data: bytes) -> tuple[list[memoryview], int]:
    """The complete, intact records at the start of ``data`` (views into it, not copies: a replayed segment is
    tens of MB), and how many bytes they span."""
    records: list[memoryview] = []
    view = memoryview(data)
    offset, end = 0, len(data)
    while offset + _FRAME.size <= end:
        length, crc = _FRAME.unpack_from(data, offset)
        start = offset + _FRAME.size
        if length > MAX_RECORD or start + length > end:
            break
        payload = view[start : start + length]
        if zlib.crc32(payload) != crc:
            break
        records.append(payload)
        offset = start + length
    return records, offset


def fsync_directory(path: Path) -> None:
    """Make a file's creation, rename or deletion in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def segment_path(directory: Path, first_seq: int) -> Path:
    return directory / f"wal-{first_seq:020d}.log"


def segment_id(path: Path) -> int:
    return int(path.stem.removeprefix("wal-"))


@dataclass(frozen=True)
class Segment:
    id: int
    path: Path


def list_segments(directory: Path) -> list[Segment]:
    return sorted((Segment(segment_id(p), p) for p in directory.glob(SEGMENT_GLOB)), key=lambda s: s.id)


def read_segment(path: Path) -> tuple[list[memoryview], bool]:
    """A segment's records, and whether it ended in a torn (unacknowledged) record."""
    data = path.read_bytes()
    records, used = read_frames(data)
    return records, used != len(data)


Durable = Callable[[list[Any], int], None]
"""Called on the event loop with the items of one group (in append order) and the segment they landed in."""
Failed = Callable[[list[Any], OSError], None]
"""Called on the event loop with the items of a group that could not be written (none of it is acknowledged)."""


class WriteAheadLog:
    """Group-committing appender over segment files in ``directory``."""

    def __init__(self, directory: Path, segment_bytes: int, on_durable: Durable, on_failed: Failed) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self.on_durable = on_durable
        self.on_failed = on_failed
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._pending: list[tuple[int, bytes, Any]] = []
        self._closing = False
        self._broken: OSError | None = None
        self._fd = -1
        self._size = 0
        self._segment = -1
        self.settled_segment = -1
        """The newest segment a group has landed in, as the event loop has seen it (older ones get nothing new)."""
        self.bytes_written = 0
        self.groups = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------------------------
    def open(self, next_seq: int) -> None:
        """Start a fresh segment at ``next_seq`` and the writer thread (existing segments are left as they are)."""
        self._loop = asyncio.get_running_loop()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._start_segment(next_seq)
        self.settled_segment = self._segment
        self._thread = threading.Thread(target=self._run, name="wal-writer", daemon=True)
        self._thread.start()

    async def close(self) -> None:
        """Write what is pending, then stop the writer."""
        with self._lock:
            self._closing = True
            self._wake.notify()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    @property
    def active_segment(self) -> int:
        return self._segment

    # --- appending -------------------------------------------------------------------------------------------
    def append(self, seq: int, payload: bytes, item: Any) -> None:
        """Queue a payload (one msgpack value); ``item`` comes back through ``on_durable`` (or ``on_failed``), never
        before this returns."""
        assert self._loop is not None
        if self._broken is not None:
            self._loop.call_soon(self.on_failed, [item], self._broken)
            return
        with self._lock:
            self._pending.append((seq, payload, item))
            if len(self._pending) == 1:
                self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._pending and not self._closing:
                    self._wake.wait()
                if not self._pending:
                    return
                group, self._pending = self._pending, []
            self._write(group)

    def _write(self, group: list[tuple[int, bytes, Any]]) -> None:
        assert self._loop is not None
        data = frame(group_record([payload for _, payload, _ in group]))
        items = [item for _, _, item in group]
        try:
            if self._size > 0 and self._size + len(data) > self.segment_bytes:
                self._start_segment(group[0][0])
            view = memoryview(data)
            while view:  # O_DSYNC: each write returns once durable
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError as exc:
            log.error("write-ahead log write failed (%s); the events of this group are not acknowledged", exc)
            self._recover_after_failure(exc)
            self._loop.call_soon_threadsafe(self.on_failed, items, exc)
            return
        self._size += len(data)
        self.bytes_written += len(data)
        self.groups += 1
        self._loop.call_soon_threadsafe(self._settle, items, self._segment)

    def _settle(self, items: list[Any], segment: int) -> None:
        self.settled_segment = segment
        self.on_durable(items, segment)

    def _start_segment(self, first_seq: int) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        path = segment_path(self.directory, first_seq)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_DSYNC, 0o600)
        fsync_directory(self.directory)
        self._segment = first_seq
        self._size = os.fstat(self._fd).st_size

    def _recover_after_failure(self, exc: OSError) -> None:
        """Cut the segment back to its last durable length; if even that fails, refuse all further writes."""
        try:
            os.ftruncate(self._fd, self._size)
            os.fdatasync(self._fd)
        except OSError:
            self._broken = exc

    # --- reading and retiring -------------------------------------------------------------------------------
    def segments(self) -> list[Segment]:
        return list_segments(self.directory)

    def delete(self, segment: int) -> None:
        if segment >= self.settled_segment:
            raise ValueError(f"segment {segment} may still receive records; only older ones can be deleted")
        segment_path(self.directory, segment).unlink(missing_ok=True)

    def size_on_disk(self) -> int:
        return sum(s.path.stat().st_size for s in self.segments() if s.path.exists())


def iter_records(segments: list[Segment]) -> Iterator[tuple[int, memoryview]]:
    """(segment id, record) of every intact record (a group), oldest first; torn tails are skipped with a log."""
    for segment in segments:
        records, torn = read_segment(segment.path)
        if torn:
            log.warning("segment %s ends in a torn record (never acknowledged); ignoring its tail", segment.path.name)
        for payload in records:
            yield segment.id, payload
