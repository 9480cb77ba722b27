"""Wall time per step and peak memory of the local training pipeline, generate → registered model.

Starts its own local stack (own state directory and ports, so it never touches `.fraud/`), then runs the whole
pipeline through kfp.local for each size. Each pipeline step is a child process, so peak memory is the largest
resident set of any child (RUSAGE_CHILDREN), next to this driver's own.

    .venv/bin/python benchmarks/pipeline.py --sizes 1000000 6362620 --trials 20
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fraud.settings import load_settings, reset_settings
from fraud.stack.local import LocalStack, private_stack_overrides
from pipelines.runner import run_local

SPLITS: dict[str, dict[str, int]] = {
    "pipeline": {},
    "published": {"train_end_step": 503, "valid_end_step": 575},
}
"""Split boundaries by name. The published strict results on the real log train on steps 1-575 and test on
576-743 (`fraud.data.published.Published.last_week`); the pipeline needs a validation block, taken from the end
of that training range."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 6_362_620], help="rows per run")
    parser.add_argument("--trials", type=int, default=20, help="Optuna trials per run")
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[7],
        help="generator and tuning seeds, one run per seed and size (default: 7, the pipeline's own default); "
        "generated months differ a lot, so compare quality over several",
    )
    parser.add_argument("--feature-set", default="strict", choices=["strict", "decision_time"])
    parser.add_argument("--timeout", type=float, default=0.0, help="tuning time limit in seconds (0 = none)")
    parser.add_argument(
        "--split",
        choices=sorted(SPLITS),
        default="pipeline",
        help="pipeline: the pipeline's default blocks (train days 1-14, validation 15-17, test 18-31); published: "
        "test on the last week (steps 576-743) as the published strict results do, validation 504-575",
    )
    args = parser.parse_args(argv)

    home = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    overrides = private_stack_overrides(home)
    local = f"http://{overrides['stack_host']}"
    overrides |= {
        "mlflow_tracking_uri": f"{local}:{overrides['mlflow_port']}",
        "s3_endpoint_url": f"{local}:{overrides['s3_port']}",
    }
    settings = load_settings(**overrides)
    stack = LocalStack(settings)
    print(f"starting a private local stack in {home} …", flush=True)
    stack.up()
    reset_settings()
    settings = load_settings(**overrides)  # now with the keys `up` generated
    rows_out = []
    try:
        for size, seed in [(size, seed) for size in args.sizes for seed in args.seeds]:
            started = time.monotonic()
            outcome = run_local(
                settings,
                {
                    "source": "generator",
                    "rows": size,
                    "seed": seed,
                    "n_trials": args.trials,
                    "timeout_s": args.timeout,
                    "feature_set": args.feature_set,
                    **SPLITS[args.split],
                },
            )
            wall = time.monotonic() - started
            children_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            steps = "  ".join(f"{k} {v:6.1f}s" for k, v in outcome.durations.items())
            ap = outcome.metrics.get("test_average_precision", 0.0)
            auc = outcome.metrics.get("test_roc_auc", 0.0)
            rows_out.append(
                f"{size:>10,} rows  seed {seed:>3}  total {wall:7.1f} s  peak child RSS {children_mb:7.0f} MB  |  "
                f"{steps}  |  "
                f"v{outcome.version} {outcome.model_family} test AP {ap:.4f} AUC {auc:.4f}"
            )
            print(rows_out[-1], flush=True)
    finally:
        stack.down()
    print("\nfraud-training pipeline, kfp.local SubprocessRunner, local stack, this machine")
    print("\n".join(rows_out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
