"""Prometheus metrics of what the predictor decides, next to KServe's own latency histograms on ``/metrics``.

- ``fraud_decisions_total{decision, model_version}``: transactions scored, by outcome. A canary analysis compares
  the block and review rates of two versions from this counter alone.
- ``fraud_score{model_version}``: histogram of fraud probabilities. Drift in what the model sees shows up here
  long before labels arrive.
- ``fraud_rejected_requests_total{protocol}``: requests refused as invalid input (400 / INVALID_ARGUMENT).
- ``fraud_failed_requests_total{model_name, kind, stage}``: prediction requests that failed, ``kind`` ``client``
  (4xx: invalid input) or ``server`` (5xx: not ready, a scoring error), ``stage`` where (``preprocess``,
  ``predict``, ``postprocess``). The latency histogram (``request_predict_seconds``) sees only requests that reached
  the predict stage, so a failure's stage says whether it is already counted there; the cluster canary reads the
  server failures as an arm's errors. Counted where the predictor runs a request (`FraudPredictor._infer`, the
  default fast path): bodies the HTTP layer refuses before the predictor sees them (unreadable JSON, too large) are
  not in it, nor requests on KServe's own chain (``FRAUD_SERVE_FAST_PATH=0``).

The score histogram is a custom collector fed with a whole batch at once (one ``searchsorted`` and one
``bincount``): ``prometheus_client.Histogram.observe`` takes one value per call, i.e. a Python loop of 1,000 calls
for a 1,000-transaction batch. It is exported in the standard histogram format (cumulative ``le`` buckets, ``_sum``,
``_count``), so dashboards and alerts cannot tell the difference.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterator, Mapping, Sequence
from typing import Final

import numpy as np
from prometheus_client import REGISTRY, Counter
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

SCORE_BUCKETS: Final[tuple[float, ...]] = (
    0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 0.95, 0.99, 1.0
)  # fmt: skip
"""Dense near 0, where almost all legitimate traffic sits, and near 1, where block thresholds usually are."""

DECISIONS: Final = Counter(
    "fraud_decisions", "Transactions scored, by decision and model version.", ["decision", "model_version"]
)
REJECTED: Final = Counter(
    "fraud_rejected_requests", "Requests refused as invalid input (HTTP 400 / gRPC INVALID_ARGUMENT).", ["protocol"]
)
FAILED: Final = Counter(
    "fraud_failed_requests",
    "Prediction requests that failed, by model, kind (client: 4xx, server: 5xx) and the stage that failed.",
    ["model_name", "kind", "stage"],
)


def record_failure(model_name: str, error: BaseException, stage: str) -> None:
    """Count one failed prediction request: ``client`` for invalid input (answered 4xx), ``server`` otherwise."""
    from kserve.errors import InvalidInput

    FAILED.labels(model_name, "client" if isinstance(error, InvalidInput) else "server", stage).inc()


class BatchHistogram(Collector):
    """A labelled Prometheus histogram observed a numpy array at a time."""

    def __init__(self, name: str, documentation: str, buckets: Sequence[float], label: str) -> None:
        self.name = name
        self.documentation = documentation
        self.bounds = np.asarray(sorted(buckets), dtype=np.float64)
        self._bounds = self.bounds.tolist()
        self.label = label
        self._counts: dict[str, np.ndarray] = {}
        self._sums: dict[str, float] = {}
        self._lock = threading.Lock()

    def observe(self, label_value: str, values: np.ndarray) -> None:
        """Add every value of ``values`` (a value equal to a bound falls in that bound's ``le`` bucket)."""
        if values.size == 1:  # a single transaction: no numpy round trips
            value = float(values.reshape(-1)[0])
            with self._lock:
                counts = self._counts.get(label_value)
                if counts is None:
                    counts = self._counts[label_value] = np.zeros(self.bounds.size + 1, dtype=np.int64)
                    self._sums[label_value] = 0.0
                counts[bisect_left(self._bounds, value)] += 1
                self._sums[label_value] += value
            return
        index = np.searchsorted(self.bounds, values, side="left")
        batch = np.bincount(index, minlength=self.bounds.size + 1)
        total = float(np.sum(values))
        with self._lock:
            if label_value not in self._counts:
                self._counts[label_value] = np.zeros(self.bounds.size + 1, dtype=np.int64)
                self._sums[label_value] = 0.0
            self._counts[label_value] += batch
            self._sums[label_value] += total

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=[self.label])
        with self._lock:
            snapshot = {key: (counts.copy(), self._sums[key]) for key, counts in self._counts.items()}
        for label_value, (counts, total) in sorted(snapshot.items()):
            cumulative = np.cumsum(counts)
            buckets = [(_bound(b), float(c)) for b, c in zip(self.bounds, cumulative[:-1], strict=True)]
            buckets.append(("+Inf", float(cumulative[-1])))
            family.add_metric([label_value], buckets, total)
        yield family


def _bound(value: float) -> str:
    return repr(float(value))


SCORES: Final = BatchHistogram(
    "fraud_score", "Fraud probability of each scored transaction, by model version.", SCORE_BUCKETS, "model_version"
)
REGISTRY.register(SCORES)


_DECISION_CHILDREN: dict[tuple[str, str], Counter] = {}


def record(version: str, counts: Mapping[str, int], scores: np.ndarray) -> None:
    """Count one request's decisions (by outcome) and scores: three counter updates at most, one histogram add."""
    for decision, count in counts.items():
        child = _DECISION_CHILDREN.get((decision, version))
        if child is None:  # labels() hashes and locks on every call: look each child up once
            child = _DECISION_CHILDREN.setdefault((decision, version), DECISIONS.labels(decision, version))
        child.inc(count)
    SCORES.observe(version, scores)
