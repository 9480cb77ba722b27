"""In-process latency of the native model families: the predictor's fast path without HTTP or features.

Trains one model per family on the genuine PaySim sample (``decision_time`` features, steps 1–9) with typical
tuned sizes, saves and reloads it as the predictor does (`load_native`, one prediction thread by default), then
times ``predict_proba`` and ``contributions`` on one row and on 1,000 rows.

    .venv/bin/python benchmarks/modeling.py [--calls 3000] [--trees 300] [--data PATH]

Numbers depend on the machine's load: run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

from fraud.data.adapters import get_adapter
from fraud.data.readers import validated_batches
from fraud.features import build_features, fit_spec
from fraud.modeling import FAMILIES, load_native, save_native
from fraud.tuning import fit_model
from samples import PAYSIM_STEPS1TO9

SAMPLE = PAYSIM_STEPS1TO9


def timings_us(fn: Callable[[], object], calls: int, warmup: int = 50) -> np.ndarray:
    for _ in range(warmup):
        fn()
    out = np.empty(calls)
    for i in range(calls):
        start = time.perf_counter_ns()
        fn()
        out[i] = (time.perf_counter_ns() - start) / 1000.0
    return out


def cycle(fn: Callable[[np.ndarray], np.ndarray], rows: np.ndarray) -> Callable[[], object]:
    """A call of ``fn`` on the next row of ``rows`` (as a 1-row matrix), or on the next matrix of a 3-D stack."""
    state = {"i": 0}

    def call() -> object:
        i = state["i"] = (state["i"] + 1) % rows.shape[0]
        return fn(rows[i] if rows.ndim == 3 else rows[i : i + 1])

    return call


def fmt(t: np.ndarray) -> str:
    return f"{np.percentile(t, 50):>9.0f} {np.percentile(t, 99):>9.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000, help="single-row calls per measurement")
    parser.add_argument("--trees", type=int, default=300, help="boosting rounds of the tree families")
    parser.add_argument("--data", type=Path, default=SAMPLE)
    parser.add_argument("--threads", type=int, default=1, help="prediction threads of the loaded tree models")
    args = parser.parse_args()

    table = pa.Table.from_batches(list(validated_batches(args.data, get_adapter("paysim"))))
    spec = fit_spec(table, "decision_time")
    X = build_features(table, spec)
    y = table["isFraud"].to_numpy()
    params: dict[str, dict[str, float]] = {
        "xgboost": {
            "max_depth": 6,
            "learning_rate": 0.05,
            "n_estimators": args.trees,
            "min_child_weight": 1.0,
            "subsample": 0.8,
            "colsample_bytree": 0.8,
            "reg_lambda": 1.0,
            "scale_pos_weight": 5.0,
        },
        "hist_gb": {
            "learning_rate": 0.05,
            "max_iter": args.trees,
            "max_leaf_nodes": 31,
            "min_samples_leaf": 20,
            "l2_regularization": 0.1,
            "pos_weight": 5.0,
        },
        "logreg": {"C": 1.0, "pos_weight": 5.0},
    }
    rng = np.random.default_rng(0)
    batch = X[rng.choice(X.shape[0], 1000, replace=False)]
    rows = X[rng.choice(X.shape[0], args.calls)]
    print(f"{X.shape[0]} rows × {X.shape[1]} features ({spec.feature_set}); µs, p50 / p99")
    header = (
        f"{'family':8} {'trees':>5} | {'proba 1 row':>19} | {'proba 1000 rows':>19} | "
        f"{'contribs 1 row':>19} | {'contribs 1000 rows':>19}"
    )
    print(header)
    print("-" * len(header))
    for family in FAMILIES:
        fitted = fit_model(family, params[family], X, y, feature_names=spec.names, n_jobs=2)
        with tempfile.TemporaryDirectory() as tmp:  # score what the predictor loads: one thread per call
            save_native(fitted, Path(tmp))
            model = load_native(Path(tmp), nthread=args.threads)
        trees = getattr(model, "n_trees", 0)
        single = timings_us(cycle(model.predict_proba, rows), args.calls)
        many = timings_us(cycle(model.predict_proba, batch[np.newaxis]), max(args.calls // 20, 20), warmup=5)
        c_single = timings_us(cycle(model.contributions, rows), max(args.calls // 3, 100))
        c_many = timings_us(cycle(model.contributions, batch[np.newaxis]), 20, warmup=2)
        print(f"{family:8} {trees:>5} | {fmt(single)} | {fmt(many)} | {fmt(c_single)} | {fmt(c_many)}")


if __name__ == "__main__":
    main()
