"""Splitter overhead: the canary splitter in front of a predictor vs the same predictor called directly.

One predictor process (the registry's version, or a model directory) and one splitter process routing every
request to it (weight 0: what the splitter adds, not what a second model costs; ``--weight`` and ``--shadow``
measure those). The load generator (`benchmarks.loadgen`, a process of its own, open loop from each request's due
time) sends single-transaction V1 requests, alternating direct and through the splitter, ``--rounds`` times:

- latency at ``--rate`` (300 r/s by default), p50 / p99, and what the splitter adds (median over the rounds);
- closed-loop throughput with ``--connections`` workers: the most each path sustains, and the ratio.

Targets (issue 14): at most 0.5 ms added at p50, at least 70 % of the predictor's own throughput. The machine is
shared, so both paths are measured in the same run, interleaved, and the load average is printed beside them.

    python benchmarks/splitter.py --alias champion             # needs `fraudctl up` and a registered model
    python benchmarks/splitter.py --model-dir ./model --rounds 3 --json benchmarks/results/splitter.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# Run as a script, this directory comes first on sys.path, and its serving.py would hide the serving package.
sys.path[:] = [str(REPO)] + [p for p in sys.path if Path(p or ".").resolve() not in {REPO, REPO / "benchmarks"}]

from benchmarks import loadgen  # noqa: E402
from benchmarks.loadgen import Job, Result  # noqa: E402
from benchmarks.servers import V1  # noqa: E402
from fraud.stack.ports import pick_free_ports  # noqa: E402
from serving.process import LOOPBACK, PredictorProcess  # noqa: E402

TARGET_ADDED_P50_MS = 0.5
TARGET_THROUGHPUT_RATIO = 0.70


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_job(job: Job, workdir: Path, name: str) -> Result:
    path = workdir / f"{name}.json"
    path.write_text(json.dumps(asdict(job)))
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.loadgen", "run", "--job", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=job.warmup + job.duration + job.timeout + 120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed: {done.stderr[-2000:]}")
    return Result.from_dict(json.loads(done.stdout))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (a load-independent cost, unlike wall-clock latency)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def transactions(count: int, seed: int) -> list[dict[str, Any]]:
    from fraud.data.generator import generate

    table = generate(max(count, 2000), seed=seed)
    fields = ["step", "type", "amount", "nameOrig", "nameDest", "oldbalanceOrg", "oldbalanceDest"]
    return list(table.select(fields).to_pylist())[:count]


def start_splitter(
    port: int, predictor_url: str, workdir: Path, weight: float, shadow: bool, server: str = "raw"
) -> subprocess.Popen[bytes]:
    route = workdir / "route.json"
    route.unlink(missing_ok=True)
    command = [
        sys.executable,
        "-m",
        "serving.canary",
        "--port",
        str(port),
        "--route-file",
        str(route),
        "--champion-url",
        predictor_url,
        "--champion-version",
        "bench",
        "--log-level",
        "warning",
        "--server",
        server,
    ]
    if weight > 0 or shadow:
        command += ["--challenger-url", predictor_url, "--challenger-version", "bench-challenger"]
        command += ["--weight", str(weight)] + (["--shadow"] if shadow else [])
    log = (workdir / "splitter.log").open("wb")
    process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    import urllib.request

    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/v2/health/ready", timeout=2) as answer:
                if answer.status == 200:
                    return process
        except OSError:
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError(f"splitter not ready: {(workdir / 'splitter.log').read_text()[-2000:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alias", default="champion", help="Registry alias the predictor serves.")
    parser.add_argument("--model-version", default=None, help="Registry version instead of the alias.")
    parser.add_argument("--model-dir", type=Path, default=None, help="Serve this MLflow model directory instead.")
    parser.add_argument("--rate", type=float, default=300.0, help="Open-loop rate for the latency comparison.")
    parser.add_argument("--duration", type=float, default=10.0, help="Seconds per measured window.")
    parser.add_argument("--connections", type=int, default=8, help="Closed-loop workers for the throughput run.")
    parser.add_argument("--rounds", type=int, default=2, help="Direct/splitter alternations (medians reported).")
    parser.add_argument("--weight", type=float, default=0.0, help="Challenger share (the same predictor serves it).")
    parser.add_argument("--shadow", action="store_true", help="Also copy every request to the 'challenger'.")
    parser.add_argument("--seed", type=int, default=3, help="Generator seed of the transactions sent.")
    parser.add_argument(
        "--server", choices=["raw", "uvicorn"], default="raw", help="The splitter's HTTP server (default: its own)."
    )
    parser.add_argument("--json", type=Path, default=None, help="Also write the results here.")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="bench-splitter-"))
    rows = transactions(2000, args.seed)
    http_port, grpc_port, split_port = pick_free_ports(3, LOOPBACK)
    requests = {
        "direct": [V1.request(http_port, [row]) for row in rows],
        "splitter": [V1.request(split_port, [row]) for row in rows],
    }
    files = {}
    for name, blobs in requests.items():
        files[name] = workdir / f"{name}.bin"
        loadgen.write_requests(files[name], blobs)
    ports = {"direct": http_port, "splitter": split_port}
    predictor_args = ["--enable_grpc", "false"]
    if args.model_dir is not None:
        predictor_args += ["--model_dir", str(args.model_dir)]
    elif args.model_version:
        predictor_args += ["--model_version", args.model_version]
    else:
        predictor_args += ["--alias", args.alias]
    say(f"starting the predictor ({' '.join(predictor_args)}) and the splitter; work dir {workdir}")
    predictor = PredictorProcess.start(http_port, grpc_port, predictor_args, log_path=workdir / "predictor.log")
    splitter = None
    results: dict[str, dict[str, list[Result]]] = {path: {"open": [], "closed": []} for path in ports}
    cpu_us: dict[str, list[list[float]]] = {path: [] for path in ports}

    def job(path: str, **values: Any) -> Job:
        return Job(
            host=LOOPBACK,
            port=ports[path],
            requests_file=str(files[path]),
            timeout=2.0,
            duration=args.duration,
            warmup=2.0,
            **values,
        )

    try:
        predictor.wait_ready(600)  # a model load takes minutes on this shared machine at load 15-20
        splitter = start_splitter(split_port, predictor.url, workdir, args.weight, args.shadow, args.server)
        for round_index in range(args.rounds):
            for path in ("direct", "splitter"):
                opened = run_job(
                    job(path, mode="open", rate=args.rate, connections=8), workdir, f"{path}-open-{round_index}"
                )
                pids = [predictor.process.pid] + ([splitter.pid] if path == "splitter" else [])
                before = [cpu_seconds(pid) for pid in pids]
                closed = run_job(
                    job(path, mode="closed", connections=args.connections), workdir, f"{path}-closed-{round_index}"
                )
                used = [cpu_seconds(pid) - start for pid, start in zip(pids, before, strict=True)]
                cpu_us[path].append([seconds / max(closed.ok_total, 1) * 1e6 for seconds in used])
                results[path]["open"].append(opened)
                results[path]["closed"].append(closed)
                say(
                    f"  round {round_index + 1} {path:>8}: {args.rate:g} r/s p50 {opened.latency_ms.p50:.2f} ms "
                    f"p99 {opened.latency_ms.p99:.2f} ms (failures {opened.failures}); closed loop "
                    f"{closed.achieved_rate:.0f} r/s (failures {closed.failures}); CPU µs/request "
                    f"{' + '.join(f'{v:.0f}' for v in cpu_us[path][-1])}; load {os.getloadavg()[0]:.1f}"
                )
    finally:
        if splitter is not None:
            splitter.terminate()
            splitter.wait(20)
        predictor.stop()

    def median(path: str, mode: str, pick: str) -> float:
        values = []
        for result in results[path][mode]:
            values.append(result.achieved_rate if pick == "rate" else getattr(result.latency_ms, pick))
        return float(statistics.median(values))

    sides = {
        path: {
            "p50_ms": median(path, "open", "p50"),
            "p99_ms": median(path, "open", "p99"),
            "max_rps": median(path, "closed", "rate"),
        }
        for path in ports
    }
    predictor_cpu = statistics.median([run[0] for run in cpu_us["direct"]])
    splitter_cpu = statistics.median([run[1] for run in cpu_us["splitter"]])
    added_p50 = sides["splitter"]["p50_ms"] - sides["direct"]["p50_ms"]
    added_p99 = sides["splitter"]["p99_ms"] - sides["direct"]["p99_ms"]
    ratio = sides["splitter"]["max_rps"] / max(sides["direct"]["max_rps"], 1e-9)
    summary: dict[str, Any] = {
        "rate": args.rate,
        "rounds": args.rounds,
        "weight": args.weight,
        "shadow": args.shadow,
        **sides,
        "added_p50_ms": added_p50,
        "added_p99_ms": added_p99,
        "throughput_ratio": ratio,
        "predictor_cpu_us_per_request": predictor_cpu,
        "splitter_cpu_us_per_request": splitter_cpu,
        "load_average": os.getloadavg(),
    }
    print(f"\nsplitter overhead ({args.rounds} rounds, medians; load average {os.getloadavg()[0]:.1f})")
    print(f"{'':<10}{'p50 ms':>10}{'p99 ms':>10}{'max r/s':>10}")
    for path, row in sides.items():
        print(f"{path:<10}{row['p50_ms']:>10.2f}{row['p99_ms']:>10.2f}{row['max_rps']:>10.0f}")
    verdict_p50 = "pass" if added_p50 <= TARGET_ADDED_P50_MS else "FAIL"
    verdict_rps = "pass" if ratio >= TARGET_THROUGHPUT_RATIO else "FAIL"
    print(f"added at p50: {added_p50:+.2f} ms (target <= {TARGET_ADDED_P50_MS} ms: {verdict_p50})")
    print(f"added at p99: {added_p99:+.2f} ms")
    print(f"throughput: {ratio:.0%} of the predictor's own (target >= {TARGET_THROUGHPUT_RATIO:.0%}: {verdict_rps})")
    print(
        f"CPU per request: predictor {predictor_cpu:.0f} µs, splitter {splitter_cpu:.0f} µs "
        f"(the splitter's share of a request's CPU: {splitter_cpu / (predictor_cpu + splitter_cpu):.0%})"
    )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
