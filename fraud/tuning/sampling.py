"""The rows a study trains on: every fraud and a weighted sample of the legitimate rows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import average_precision_score


@dataclass(frozen=True)
class TuningSet:
    """The rows a study trains on: every fraud and a weighted sample of the legitimate rows."""

    X: np.ndarray
    y: np.ndarray
    weight: np.ndarray
    rate: float
    """Fraction of legitimate rows kept (1.0: no sampling); kept legitimate rows weigh ``1/rate``."""


def sample_negatives(X: np.ndarray, y: np.ndarray, *, rate: float | None, max_rows: int, seed: int) -> TuningSet:
    """Keep every positive and a uniform sample of negatives (in their original order), weighted by 1/rate.

    ``rate=None`` picks the largest rate that keeps the set within ``max_rows``. The rate recorded is the
    realised one (kept / available), so the weights make the weighted class totals exactly those of the input.
    """
    y = np.asarray(y)
    positives = np.flatnonzero(y == 1)
    negatives = np.flatnonzero(y != 1)
    if rate is None:
        room = max_rows - positives.size
        rate = 1.0 if X.shape[0] <= max_rows else max(room, 1) / max(negatives.size, 1)
    rate = min(max(rate, 0.0), 1.0)
    if rate >= 1.0 or negatives.size == 0:
        return TuningSet(X, y.astype(np.int8), np.ones(X.shape[0], dtype=np.float64), 1.0)
    keep_n = max(1, round(rate * negatives.size))
    rng = np.random.default_rng(seed)
    kept = np.sort(rng.choice(negatives, size=keep_n, replace=False))
    realised = keep_n / negatives.size
    rows = np.sort(np.concatenate([positives, kept]))
    y_s = y[rows].astype(np.int8)
    w = np.where(y_s == 1, 1.0, 1.0 / realised).astype(np.float64)
    return TuningSet(X[rows], y_s, w, realised)


def average_precision(y: np.ndarray, scores: np.ndarray, weight: np.ndarray | None = None) -> float:
    return float(average_precision_score(y, scores, sample_weight=weight))
