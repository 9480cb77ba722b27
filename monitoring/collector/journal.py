"""The flush journal: which logged events are already in the object store, so none is written twice.

A flush is recorded in two steps around its uploads: an *intent* (flush number, object keys, the sequence numbers
of its events) made durable before the first upload, and a *commit* after the last. Object keys are a function of
the flush number and the rows' partitions, so after a crash an intent without a commit is simply redone (same
events, same keys: an upload that had happened is overwritten with the same rows). Events whose flush committed
are skipped when the write-ahead log is replayed. That is what makes "acknowledged once, in the store once" hold
across `kill -9`.

The journal is compacted by rewriting it as one *base* record holding the next flush number and the committed
sequence numbers that still sit in live write-ahead segments.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import msgspec
import numpy as np

from monitoring.collector.wal import frame, fsync_directory, read_frames

log = logging.getLogger(__name__)

JOURNAL_NAME: Final = "flushes.journal"
_ENCODER: Final = msgspec.msgpack.Encoder()


@dataclass
class Intent:
    flush: int
    objects: list[str]
    seqs: np.ndarray


@dataclass
class JournalState:
    next_flush: int = 0
    committed: list[np.ndarray] = field(default_factory=list)
    open_intents: dict[int, Intent] = field(default_factory=dict)

    def committed_seqs(self) -> np.ndarray:
        if not self.committed:
            return np.empty(0, dtype=np.uint64)
        return np.unique(np.concatenate(self.committed))


def _seqs(values: Any) -> np.ndarray:
    return np.frombuffer(values, dtype=np.uint64).copy()


class Journal:
    def __init__(self, directory: Path) -> None:
        self.path = directory / JOURNAL_NAME
        self._fd = -1

    def load(self) -> JournalState:
        state = JournalState()
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return state
        records, used = read_frames(data)
        if used != len(data):
            log.warning("flush journal ends in a torn record; ignoring it (its flush is redone)")
        intents: dict[int, Intent] = {}
        for payload in records:
            record = msgspec.msgpack.decode(payload)
            op = record["op"]
            if op == "base":
                state.next_flush = max(state.next_flush, int(record["next"]))
                state.committed.append(_seqs(record["done"]))
            elif op == "intent":
                flush = int(record["flush"])
                intents[flush] = Intent(flush, list(record["objects"]), _seqs(record["seqs"]))
                state.next_flush = max(state.next_flush, flush + 1)
            elif op == "commit":
                intent = intents.pop(int(record["flush"]), None)
                if intent is not None:
                    state.committed.append(intent.seqs)
        state.open_intents = intents
        return state

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fsync_directory(self.path.parent)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _append(self, record: dict[str, Any]) -> None:
        data = frame(_ENCODER.encode(record))
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        os.fdatasync(self._fd)

    def intent(self, flush: int, objects: list[str], seqs: np.ndarray) -> None:
        self._append({"op": "intent", "flush": flush, "objects": objects, "seqs": seqs.astype(np.uint64).tobytes()})

    def commit(self, flush: int) -> None:
        self._append({"op": "commit", "flush": flush})

    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def compact(self, oldest_live_seq: int) -> None:
        """Rewrite as one base record; committed seqs older than every live segment are dropped.

        Only call this with no intent open (between flushes): an open intent is carried over unchanged.
        """
        state = self.load()
        done = state.committed_seqs()
        done = done[done >= np.uint64(max(oldest_live_seq, 0))]
        records = [{"op": "base", "next": state.next_flush, "done": done.tobytes()}]
        records += [
            {"op": "intent", "flush": i.flush, "objects": i.objects, "seqs": i.seqs.tobytes()}
            for i in state.open_intents.values()
        ]
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("wb") as out:
            for record in records:
                out.write(frame(_ENCODER.encode(record)))
            out.flush()
            os.fsync(out.fileno())
        self.close()
        tmp.replace(self.path)
        fsync_directory(self.path.parent)
        self.open()
