"""Score genuine PaySim rows with the registered model, beside generated rows of the same steps.

A model trained on generated data should find the genuine log about as hard as generated data of the same
steps; a large gap says where the generator differs from the real log. The registered version is scored through
its MLflow pyfunc (raw rows in, probability and decision out), the way any MLflow server would serve it.

    .venv/bin/python benchmarks/real_vs_generated.py [--alias champion | --version N]

Needs a running stack (`fraudctl up`) holding a registered `fraud-detector`. The generated rows come from the
same generator call the version was trained on (rows and seed read from its MLflow run), so "generated" here
means the training data's own first steps.
"""

from __future__ import annotations

import argparse
import os
from urllib.parse import parse_qs, urlparse

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from mlflow.pyfunc import PyFuncModel

from fraud.data.adapters import get_adapter
from fraud.data.generator import generate
from fraud.data.readers import validated_batches
from fraud.evaluation.metrics import average_precision
from fraud.registry import connect
from fraud.settings import get_settings
from samples import PAYSIM_STEPS1TO9

GENUINE = PAYSIM_STEPS1TO9
RAW_INPUTS = ("step", "type", "amount", "nameOrig", "nameDest", "oldbalanceOrg", "oldbalanceDest")


def _score(model: PyFuncModel, table: pa.Table) -> dict[str, float]:
    frame: pd.DataFrame = table.select(list(RAW_INPUTS)).to_pandas()
    answer = pd.DataFrame(model.predict(frame))
    y = table["isFraud"].to_numpy().astype(np.int8)
    p = answer["fraud_probability"].to_numpy(dtype=np.float64)
    blocked = answer["decision"].to_numpy() == "block"
    flagged = blocked | (answer["decision"].to_numpy() == "review")
    positives = int(y.sum())
    return {
        "rows": float(len(y)),
        "fraud": float(positives),
        "fraud_rate": positives / len(y),
        "average_precision": average_precision(p, y) if positives else float("nan"),
        "recall_block": float(blocked[y == 1].mean()) if positives else float("nan"),
        "precision_block": float(y[blocked].mean()) if blocked.any() else 0.0,
        "recall_review_or_block": float(flagged[y == 1].mean()) if positives else float("nan"),
        "median_fraud_amount": float(np.median(table["amount"].to_numpy()[y == 1])) if positives else float("nan"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--alias", default="champion", help="registry alias to score (default champion)")
    group.add_argument("--version", help="registry version number to score instead of an alias")
    parser.add_argument("--last-step", type=int, default=9, help="compare steps 1..N (the genuine file has 1..9)")
    args = parser.parse_args(argv)

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    settings = get_settings()
    client = connect(settings)
    name = settings.model_name
    version = (
        client.get_model_version(name, args.version)
        if args.version
        else client.get_model_version_by_alias(name, args.alias)
    )
    if not version.run_id:
        parser.error(f"version {version.version} has no MLflow run to read its training data from")
    run = client.get_run(version.run_id)
    source = run.data.params.get("source", "")
    query = parse_qs(urlparse(source).query)
    if not source.startswith("generator"):
        parser.error(f"version {version.version} was trained on '{source}', not on generated data")
    rows, seed = int(query["rows"][0]), int(query["seed"][0])
    model = mlflow.pyfunc.load_model(f"models:/{name}/{version.version}")

    genuine = pa.Table.from_batches(list(validated_batches(GENUINE, get_adapter("paysim"))))
    genuine = genuine.filter(pc.less_equal(genuine["step"], args.last_step))
    generated = generate(rows, seed=seed)
    generated = generated.filter(pc.less_equal(generated["step"], args.last_step))

    feature_set = version.tags.get("feature_set", "?")
    family = version.tags.get("model_family", "?")
    print(f"fraud-detector v{version.version} ({family}, {feature_set} features), trained on {source}")
    print(f"steps 1..{args.last_step}; decisions use the thresholds stored with the version\n")
    results = {"genuine (Kaggle head)": _score(model, genuine), "generated (training data)": _score(model, generated)}
    keys = list(next(iter(results.values())))
    print(f"{'':<28}" + "".join(f"{k:>24}" for k in keys))
    for label, values in results.items():
        cells = "".join(
            f"{values[k]:>24,.0f}" if k in {"rows", "fraud", "median_fraud_amount"} else f"{values[k]:>24.4f}"
            for k in keys
        )
        print(f"{label:<28}{cells}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
