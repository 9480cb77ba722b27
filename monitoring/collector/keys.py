"""Which events the collector has already taken, across restarts: the duplicate filter.

Keys of events still in live write-ahead segments are in a set (they are also replayed from the log at start).
When a segment is retired, its keys are saved as a sorted ``uint64`` array (``keys/keys-<segment>.npy``, 8 bytes
per event) and move to the frozen part, looked up by binary search; files older than the dedup horizon are
dropped. So memory stays near 8 bytes per remembered event instead of ~100 for a Python set entry.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Final

import numpy as np

from monitoring.collector.wal import fsync_directory

log = logging.getLogger(__name__)

_MERGE_AT: Final = 8


class KeyIndex:
    def __init__(self, directory: Path, horizon_seconds: float) -> None:
        self.directory = directory
        self.horizon = horizon_seconds
        self.recent: set[int] = set()
        self._frozen: list[np.ndarray] = []

    def __contains__(self, key: int) -> bool:
        if key in self.recent:
            return True
        if not self._frozen:
            return False
        probe = np.uint64(key)
        for keys in self._frozen:
            at = int(np.searchsorted(keys, probe))
            if at < len(keys) and keys[at] == probe:
                return True
        return False

    def __len__(self) -> int:
        return len(self.recent) + sum(len(k) for k in self._frozen)

    def add(self, key: int) -> None:
        self.recent.add(key)

    def add_many(self, keys: list[int]) -> None:
        self.recent.update(keys)

    def load(self) -> None:
        """Read the saved keys within the horizon; delete older files."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.prune()
        arrays = [np.load(path) for path in sorted(self.directory.glob("keys-*.npy"))]
        self._frozen = [np.unique(np.concatenate(arrays))] if arrays else []

    def prune(self) -> None:
        cutoff = time.time() - self.horizon
        for path in self.directory.glob("keys-*.npy"):
            if path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)

    def freeze(self, segment: int, keys: list[int]) -> None:
        """Persist a retired segment's keys (before the segment file is deleted) and index them compactly."""
        array = np.unique(np.fromiter(keys, dtype=np.uint64, count=len(keys)))
        path = self.directory / f"keys-{segment:020d}.npy"
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as out:
            np.save(out, array)
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(path.with_suffix(".npy"))
        fsync_directory(self.directory)
        self.recent.difference_update(keys)
        self._frozen.append(array)
        if len(self._frozen) > _MERGE_AT:
            self._frozen = [np.unique(np.concatenate(self._frozen))]
