"""Payload-log overhead: the predictor with its payload logger on (every request and answer sent to a collector as
CloudEvents) vs the same model with it off, in the same run.

Two predictor processes serve the same model (a model directory, or a registry alias/version): one plain, one with
``--logger_url`` pointed at a real collector (``--collector-url``, or by default the collector of a private local
stack started here: SeaweedFS, MLflow and the collector on free ports, stopped at the end). The load generator
(`benchmarks.loadgen`, a process of its own, open loop from each request's due time) sends single-transaction V1
requests at ``--rate`` (300 r/s), alternating off and on, ``--rounds`` times; reported: p50 / p99 (medians over the
rounds), their ratios on/off, the predictor's CPU per request (load-independent) and the events the logger sent,
failed and dropped. The machine is shared: the load average is printed beside every round.

    python benchmarks/payload_log.py --model-dir ./model --rounds 3 --json benchmarks/results/payload_log.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# Run as a script, this directory comes first on sys.path, and its serving.py would hide the serving package.
sys.path[:] = [str(REPO)] + [p for p in sys.path if Path(p or ".").resolve() not in {REPO, REPO / "benchmarks"}]

from benchmarks import loadgen  # noqa: E402
from benchmarks.loadgen import Job, Result  # noqa: E402
from benchmarks.servers import V1  # noqa: E402
from benchmarks.splitter import cpu_seconds, run_job, say, transactions  # noqa: E402
from fraud.settings import load_settings  # noqa: E402
from fraud.stack.ports import pick_free_ports  # noqa: E402
from serving.process import LOOPBACK, PredictorProcess  # noqa: E402

MODES = ("off", "on")


@contextlib.contextmanager
def private_collector(home: Path) -> Iterator[str]:
    """The collector of a private local stack (SeaweedFS S3 + MLflow + collector on free ports, state in ``home``,
    never `.fraud/`'s stack); always stopped on the way out."""
    from fraud.stack.local import LocalStack, private_stack_overrides

    stack = LocalStack(load_settings(**private_stack_overrides(home, LOOPBACK)))
    say(f"starting a private local stack in {home} for its collector …")
    try:
        stack.up(lambda message: say(f"  stack: {message}"))
        yield stack.collector_url + "/"
    finally:
        stack.down()


def logger_counters(predictor: PredictorProcess) -> dict[str, float]:
    with urllib.request.urlopen(f"{predictor.url}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    found = {}
    for line in text.splitlines():
        if line.startswith("fraud_payload_log_events_"):
            name, value = line.split()
            found[name.removeprefix("fraud_payload_log_events_").removesuffix("_total")] = float(value)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alias", default="champion", help="Registry alias the predictors serve.")
    parser.add_argument("--model-version", default=None, help="Registry version instead of the alias.")
    parser.add_argument("--model-dir", type=Path, default=None, help="Serve this MLflow model directory instead.")
    parser.add_argument("--collector-url", default=None, help="Send events here instead of a private collector.")
    parser.add_argument("--rate", type=float, default=300.0, help="Open-loop request rate.")
    parser.add_argument("--duration", type=float, default=10.0, help="Seconds per measured window.")
    parser.add_argument("--rounds", type=int, default=3, help="Off/on alternations (medians reported).")
    parser.add_argument("--seed", type=int, default=3, help="Generator seed of the transactions sent.")
    parser.add_argument("--json", type=Path, default=None, help="Also write the results here.")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="bench-payload-log-"))
    rows = transactions(2000, args.seed)
    ports = dict(zip(MODES, pick_free_ports(4, LOOPBACK)[::2], strict=True))
    files = {}
    for mode, port in ports.items():
        files[mode] = workdir / f"{mode}.bin"
        loadgen.write_requests(files[mode], [V1.request(port, [row]) for row in rows])
    model_args = ["--enable_grpc", "false"]
    if args.model_dir is not None:
        model_args += ["--model_dir", str(args.model_dir)]
    elif args.model_version:
        model_args += ["--model_version", args.model_version]
    else:
        model_args += ["--alias", args.alias]
    with contextlib.ExitStack() as stack:
        collector_url = args.collector_url or stack.enter_context(private_collector(workdir / "stack"))
        results, cpu_us, counters = measure(args, workdir, ports, files, model_args, collector_url)
    report(args, results, cpu_us, counters)
    return 0


def measure(
    args: argparse.Namespace,
    workdir: Path,
    ports: dict[str, int],
    files: dict[str, Path],
    model_args: list[str],
    collector_url: str,
) -> tuple[dict[str, list[Result]], dict[str, list[float]], dict[str, float]]:
    """The off/on rounds; the predictors are stopped on the way out."""
    say(f"model {' '.join(model_args)}; events to {collector_url}; work dir {workdir}")
    grpc_ports = pick_free_ports(2, LOOPBACK)
    predictors = {
        mode: PredictorProcess.start(
            ports[mode],
            grpc_ports[i],
            model_args + (["--logger_url", collector_url] if mode == "on" else []),
            log_path=workdir / f"predictor-{mode}.log",
        )
        for i, mode in enumerate(MODES)
    }
    results: dict[str, list[Result]] = {mode: [] for mode in MODES}
    cpu_us: dict[str, list[float]] = {mode: [] for mode in MODES}
    try:
        for predictor in predictors.values():
            predictor.wait_ready(600)
        for round_index in range(args.rounds):
            for mode in MODES:
                pid = predictors[mode].process.pid
                before = cpu_seconds(pid)
                job = Job(
                    host=LOOPBACK,
                    port=ports[mode],
                    requests_file=str(files[mode]),
                    timeout=2.0,
                    duration=args.duration,
                    warmup=2.0,
                    mode="open",
                    rate=args.rate,
                    connections=8,
                )
                result = run_job(job, workdir, f"{mode}-{round_index}")
                cpu_us[mode].append((cpu_seconds(pid) - before) / max(result.ok_total, 1) * 1e6)
                results[mode].append(result)
                say(
                    f"  round {round_index + 1} logger {mode:>3}: {args.rate:g} r/s p50 {result.latency_ms.p50:.2f} ms "
                    f"p99 {result.latency_ms.p99:.2f} ms (failures {result.failures}); CPU µs/request "
                    f"{cpu_us[mode][-1]:.0f}; load {os.getloadavg()[0]:.1f}"
                )
        time.sleep(2)  # the last events leave the queue
        counters = logger_counters(predictors["on"])
    finally:
        for predictor in predictors.values():
            predictor.stop()
    return results, cpu_us, counters


def report(
    args: argparse.Namespace,
    results: dict[str, list[Result]],
    cpu_us: dict[str, list[float]],
    counters: dict[str, float],
) -> None:

    def median(mode: str, pick: str) -> float:
        return float(statistics.median(getattr(r.latency_ms, pick) for r in results[mode]))

    sides = {
        mode: {
            "p50_ms": median(mode, "p50"),
            "p99_ms": median(mode, "p99"),
            "cpu_us_per_request": statistics.median(cpu_us[mode]),
            "failures": sum(r.failures for r in results[mode]),
            "requests_ok": sum(r.ok_total for r in results[mode]),
        }
        for mode in MODES
    }
    ratios = {
        key: sides["on"][key] / max(sides["off"][key], 1e-9) for key in ("p50_ms", "p99_ms", "cpu_us_per_request")
    }
    summary: dict[str, Any] = {
        "rate": args.rate,
        "rounds": args.rounds,
        "duration_s": args.duration,
        **sides,
        "ratio_on_off": ratios,
        "events": counters,
        "load_average": os.getloadavg(),
    }
    print(f"\npayload-log overhead ({args.rounds} rounds at {args.rate:g} r/s, medians; load {os.getloadavg()})")
    print(f"{'logger':<8}{'p50 ms':>10}{'p99 ms':>10}{'CPU µs/req':>12}{'failures':>10}")
    for mode, row in sides.items():
        print(
            f"{mode:<8}{row['p50_ms']:>10.2f}{row['p99_ms']:>10.2f}{row['cpu_us_per_request']:>12.0f}"
            f"{row['failures']:>10}"
        )
    print(
        f"on/off: p50 x{ratios['p50_ms']:.2f}, p99 x{ratios['p99_ms']:.2f}, CPU per request "
        f"x{ratios['cpu_us_per_request']:.2f}; events {counters} (requests answered with the logger on: "
        f"{sides['on']['requests_ok']} measured, plus warm-ups: two events each)"
    )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    raise SystemExit(main())
