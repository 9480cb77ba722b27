"""Two checkouts' predictors on the same model, measured in alternation: a before/after comparison that a busy
machine cannot bias.

`benchmarks/serving.py` measures one server at a time against its peers and a private stack; on a shared machine
whose load moves by the minute, two such runs at different times compare the load as much as the code. This
starts ``python -m serving --model_dir DIR`` from this checkout and from ``--compare`` (say, main's), both at
once, and runs the same closed-loop jobs (`benchmarks.loadgen`, separate process) on each in turn, ``--rounds``
times, A B B A A B … so that drifting load falls on both alike. Jobs: single V1 transactions, 1,000-row V1
batches (default reasons: flagged rows) and 1,000-row V2 batches, from the genuine PaySim sample. Prints each
server's median over rounds and the ratio this / compare (> 1: this checkout is faster)::

    python -m benchmarks.serving_ab --model-dir /tmp/model --compare /tmp/main-checkout --rounds 6
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

from benchmarks.loadgen import http_request, write_requests
from fraud.stack.ports import pick_free_ports
from serving.process import LOOPBACK, PredictorProcess

REPO = Path(__file__).resolve().parents[1]
FIELDS = ("step", "type", "amount", "nameOrig", "oldbalanceOrg", "nameDest", "oldbalanceDest")
V2_TYPES = {"step": "INT64", "type": "BYTES", "amount": "FP64", "oldbalanceOrg": "FP64", "oldbalanceDest": "FP64"}


def _rows(data: Path) -> list[dict[str, Any]]:
    frame = pd.read_csv(data)[list(FIELDS)]
    return [{str(k): v for k, v in row.items()} | {"step": int(row["step"])} for row in frame.to_dict("records")]


def _bodies(rows: list[dict[str, Any]]) -> dict[str, tuple[str, list[bytes]]]:
    batches = [rows[start : start + 1000] for start in range(0, 5000, 1000)]
    v2 = [
        {
            "inputs": [
                {"name": name, "datatype": V2_TYPES.get(name, "BYTES"), "shape": [len(b)], "data": [r[name] for r in b]}
                for name in FIELDS
            ]
        }
        for b in batches
    ]
    return {
        "v1 single": ("/v1/models/fraud-detector:predict", [orjson.dumps({"instances": [r]}) for r in rows[:2000]]),
        "v1 batch 1000": ("/v1/models/fraud-detector:predict", [orjson.dumps({"instances": b}) for b in batches]),
        "v2 batch 1000": ("/v2/models/fraud-detector/infer", [orjson.dumps(body) for body in v2]),
    }


def _run(job: dict[str, Any], workdir: Path) -> dict[str, Any]:
    path = workdir / "job.json"
    path.write_text(json.dumps(job))
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.loadgen", "run", "--job", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, required=True, help="An MLflow model directory both serve.")
    parser.add_argument("--compare", type=Path, required=True, help="The other checkout (e.g. main's).")
    parser.add_argument("--data", type=Path, required=True, help="Genuine PaySim CSV the requests come from.")
    parser.add_argument("--rounds", type=int, default=6, help="Measurements per job and server.")
    parser.add_argument("--duration", type=float, default=5.0, help="Seconds per measurement.")
    parser.add_argument("--single-connections", type=int, default=8, help="Closed-loop connections, singles.")
    parser.add_argument("--batch-connections", type=int, default=2, help="Closed-loop connections, batches.")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="serving-ab-"))
    servers: dict[str, PredictorProcess] = {}
    try:
        for label, cwd in (("compare", args.compare.resolve()), ("this", REPO)):
            http, grpc = pick_free_ports(2, LOOPBACK)
            command = [sys.executable, "-m", "serving", "--http_port", str(http), "--grpc_port", str(grpc)]
            servers[label] = PredictorProcess.launch(
                [*command, "--model_dir", str(args.model_dir.resolve()), "--enable_grpc", "false"],
                http,
                grpc,
                log_path=workdir / f"{label}.log",
                cwd=cwd,
                name=label,
            )
        for server in servers.values():
            server.wait_ready(timeout=900)
        bodies = _bodies(_rows(args.data))
        results: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for job_name, (path, payloads) in bodies.items():
            connections = args.single_connections if "single" in job_name else args.batch_connections
            for round_number in range(args.rounds):
                order = ("compare", "this") if round_number % 2 == 0 else ("this", "compare")
                for label in order:
                    server = servers[label]
                    file = workdir / f"{label}-{job_name.replace(' ', '-')}.bin"
                    write_requests(file, [http_request(LOOPBACK, server.http_port, path, body) for body in payloads])
                    job = {
                        "host": LOOPBACK,
                        "port": server.http_port,
                        "requests_file": str(file),
                        "mode": "closed",
                        "duration": args.duration,
                        "warmup": 1.0,
                        "connections": connections,
                        "timeout": 30.0,
                    }
                    results.setdefault((job_name, label), []).append(_run(job, workdir))
                    print(
                        f"{job_name:14} round {round_number + 1} {label:8} "
                        f"{results[(job_name, label)][-1]['achieved_rate']:9.1f} req/s",
                        flush=True,
                    )
        print("\nmedian over rounds (closed loop): requests/s, p50 and p99 latency ms; ratio this/compare")
        for job_name in bodies:
            line = f"{job_name:14}"
            rates = {}
            for label in ("compare", "this"):
                runs = results[(job_name, label)]
                rates[label] = statistics.median(r["achieved_rate"] for r in runs)
                p50 = statistics.median(r["latency_ms"]["p50"] for r in runs)
                p99 = statistics.median(r["latency_ms"]["p99"] for r in runs)
                errors = sum(sum(r["errors"].values()) + r["timeouts"] for r in runs)
                line += f"  {label}: {rates[label]:8.1f}/s p50 {p50:7.2f} p99 {p99:7.2f} errors {errors}"
            print(f"{line}  ratio {rates['this'] / rates['compare']:.3f}")
    finally:
        for server in servers.values():
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
