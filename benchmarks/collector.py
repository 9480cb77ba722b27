"""Collector benchmarks: throughput, kill -9 mid-load, and 1,000,000 logged predictions to the store and back.

    python -m benchmarks.collector all                  # the three below, one private SeaweedFS
    python -m benchmarks.collector throughput --seconds 20 --connections 64
    python -m benchmarks.collector crash --events 60000 --kill-after 4
    python -m benchmarks.collector volume --rows 1000000

- throughput: a separate sender process (`benchmarks.collector_events`, asyncio + httptools, keep-alive
  connections) sends binary CloudEvents (request and response halves of single-transaction V1 calls) for a fixed
  time; printed: acknowledged events/s, the collector's CPU per event, and the same sender against a server on
  the same HTTP layer that only answers 200 (the ceiling of HTTP on this machine): the ratio is the cost of
  durability, dedup and the join.
- crash: the sender sends events; the collector is SIGKILLed mid-load, restarted on the same write-ahead log,
  and everything not acknowledged is sent again; then every acknowledged event must be in the store exactly once
  (counts printed; exits 1 if not).
- volume: the write-ahead log is filled with the request and response events of ``rows`` generated PaySim
  transactions, exactly as the collector writes them when it acknowledges (its own `WriteAheadLog`), so the
  collector starts with 2 × rows acknowledged events not yet in the store. Timed: collector start → everything
  joined and written as Parquet; then `read_log` of all rows in a fresh process (time, peak RSS). The HTTP path
  is measured by `throughput`; at its rate the events themselves would take 2 × rows / (events/s) to arrive.

`volume_chain` is the hook for the drift and report code: it yields the settings and time window of a store
holding the logged rows, so a later benchmark can time drift and the daily report on the same rows.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import requests

from benchmarks.collector_events import event_id
from fraud.settings import Settings, load_settings
from fraud.stack.credentials import ensure_credentials
from fraud.stack.local import private_stack_overrides
from fraud.stack.ports import pick_free_ports
from fraud.stack.seaweedfs import SeaweedFS
from monitoring.collector.process import CollectorProcess
from monitoring.inference_log import read_log

HOST = "127.0.0.1"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the store ---------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def private_store(workdir: Path) -> Iterator[Settings]:
    """A SeaweedFS S3 store of its own (no MLflow: the collector needs only the store)."""
    home = workdir / "home"
    overrides = private_stack_overrides(home)
    credentials, _ = ensure_credentials(home / "credentials.env")
    settings = load_settings(**overrides, s3_endpoint_url=f"http://{HOST}:{overrides['s3_port']}")
    store = SeaweedFS(settings, credentials)
    pid = store.start()
    try:
        store.wait_healthy(pid, 180)
        yield load_settings(**overrides, s3_endpoint_url=f"http://{HOST}:{overrides['s3_port']}")
    finally:
        store.stop()


@dataclass
class Collector:
    settings: Settings
    workdir: Path
    env: dict[str, str]
    port: int = 0
    process: CollectorProcess | None = None

    def start(self, wal: Path) -> float:
        if not self.port:
            self.port = pick_free_ports(1, HOST)[0]
        self.process = CollectorProcess.start(
            self.settings, port=self.port, wal_dir=wal, log_path=self.workdir / "collector.log", env=self.env
        )
        return self.process.wait_ready(timeout=600)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.process.pid

    def cpu_seconds(self) -> float:
        times = psutil.Process(self.pid).cpu_times()
        return float(times.user + times.system)

    def flush_all(self) -> int:
        answer = requests.post(f"{self.url}/v1/flush", params={"unmatched": "1"}, timeout=600)
        answer.raise_for_status()
        return int(answer.json()["rows"])

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None


def send(port: int, acked: Path, **options: Any) -> dict[str, Any]:
    """Run the sender in its own process; its JSON result."""
    command = [sys.executable, "-m", "benchmarks.collector_events", "send", "--port", str(port), "--acked", str(acked)]
    for name, value in options.items():
        command += [f"--{name.replace('_', '-')}", str(value)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --- throughput --------------------------------------------------------------------------------------------------
def trivial_server(port: int) -> None:
    """The collector's HTTP layer answering 200 to everything: what HTTP alone costs here."""
    import uvloop

    from monitoring.collector.http import HttpServer, Request, Response

    async def answer(request: Request) -> Response:
        return Response(200, b'{"status":"stored"}')

    async def main() -> None:
        server = HttpServer(answer, 8 * 1024 * 1024)
        await server.start(HOST, port)
        await asyncio.Event().wait()

    uvloop.run(main())


def throughput(settings: Settings, workdir: Path, seconds: float, connections: int) -> dict[str, Any]:
    collector = Collector(settings, workdir / "throughput", {})
    started = collector.start(workdir / "throughput" / "wal")
    log(f"throughput: collector ready in {started:.1f} s; warming up")
    send(collector.port, workdir / "warm.bin", first=10**9, duration=3, connections=connections)
    cpu_before = collector.cpu_seconds()
    result = send(collector.port, workdir / "acked.bin", first=0, duration=seconds, connections=connections)
    cpu = collector.cpu_seconds() - cpu_before
    metrics = requests.get(f"{collector.url}/metrics", timeout=10).text
    collector.stop()
    commits = next(float(line.split()[-1]) for line in metrics.splitlines() if line.startswith("collector_wal_commits"))

    port = pick_free_ports(1, HOST)[0]
    ceiling = subprocess.Popen([sys.executable, "-m", "benchmarks.collector", "trivial-server", "--port", str(port)])
    try:
        for _ in range(200):
            with contextlib.suppress(requests.RequestException):
                requests.get(f"http://{HOST}:{port}/", timeout=1)
                break
            time.sleep(0.1)
        send(port, workdir / "warm.bin", first=0, duration=3, connections=connections)
        baseline = send(port, workdir / "trivial.bin", first=0, duration=seconds, connections=connections)
    finally:
        ceiling.kill()
        ceiling.wait()
    rate, ceiling_rate = result["events_per_s"], baseline["events_per_s"]
    return {
        "events_per_s": rate,
        "acked": result["acked"],
        "errors": result["errors"] + result["connection_errors"],
        "collector_cpu_us_per_event": round(cpu / max(result["acked"], 1) * 1e6, 1),
        "events_per_fsync": round(result["acked"] / max(commits, 1), 1),
        "http_only_ceiling_per_s": ceiling_rate,
        "ratio_to_http_ceiling": round(rate / ceiling_rate, 3) if ceiling_rate else None,
        "sender_cpu": result["generator_cpu"],
        "target_5000_met": rate >= 5000,
        "load_average": os.getloadavg()[0],
    }


# --- crash -------------------------------------------------------------------------------------------------------
def crash(settings: Settings, workdir: Path, events: int, kill_after: float, connections: int) -> dict[str, Any]:
    settings = settings.model_copy(update={"monitor_log_bucket": "crash-log"})
    home = workdir / "crash"
    wal = home / "wal"
    collector = Collector(settings, home, {})
    collector.start(wal)
    sender = subprocess.Popen(
        [
            sys.executable, "-m", "benchmarks.collector_events", "send", "--port", str(collector.port),
            "--count", str(events), "--connections", str(connections), "--acked", str(home / "acked-1.bin"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    time.sleep(kill_after)
    assert collector.process is not None
    collector.process.kill()
    log(f"crash: collector killed with SIGKILL after {kill_after} s of load")
    first = json.loads((sender.communicate()[0] or "{}").strip().splitlines()[-1])
    acked_first = np.fromfile(home / "acked-1.bin", dtype=np.int64)

    restart = collector.start(wal)
    todo = np.setdiff1d(np.arange(events), acked_first)
    np.save(home / "todo.npy", todo)
    log(f"crash: restarted in {restart:.1f} s; resending the {len(todo):,} events not acknowledged")
    second = send(collector.port, home / "acked-2.bin", indexes=home / "todo.npy", connections=connections)
    acked_second = np.fromfile(home / "acked-2.bin", dtype=np.int64)
    collector.flush_all()
    collector.stop()

    now = datetime.now(UTC)
    frame = read_log(settings, now - timedelta(hours=2), now + timedelta(hours=1))
    acked = np.union1d(acked_first, acked_second)
    per_id = frame.groupby("request_id").size()
    requests_acked = {event_id(int(i)) for i in acked if i % 2 == 0}
    responses_acked = {event_id(int(i)) for i in acked if i % 2 == 1}
    with_request = set(frame.loc[frame["amount"].notna(), "request_id"])
    with_response = set(frame.loc[frame["score"].notna(), "request_id"])
    result = {
        "events": events,
        "acked_before_kill": len(acked_first),
        "sent_before_kill": first.get("sent"),
        "resent_after_restart": len(todo),
        "duplicates_on_resend": second["duplicates"],
        "acked_total": len(acked),
        "rows_in_store": len(frame),
        "transactions": events // 2,
        "request_ids_more_than_once": int((per_id > 1).sum()),
        "acked_requests_missing": len(requests_acked - with_request),
        "acked_responses_missing": len(responses_acked - with_response),
        "unmatched_rows": int((~frame["matched"]).sum()),
    }
    result["exactly_once"] = (
        result["request_ids_more_than_once"] == 0
        and result["acked_requests_missing"] == 0
        and result["acked_responses_missing"] == 0
        and len(acked) == events
        and len(frame) == events // 2
    )
    return result


# --- volume ------------------------------------------------------------------------------------------------------
GROUP_EVENTS = 16
"""Events per write-ahead group in `fill_wal`: about what the throughput run commits per synchronous write."""


def fill_wal(wal: Path, rows: int, seed: int, segment_bytes: int) -> tuple[int, float]:
    """Write 2 × rows acknowledged events (request, response per generated transaction) as the collector would:
    in groups of `GROUP_EVENTS`, each record one group."""
    from fraud.data.generator import generate
    from monitoring.collector.events import Envelope, Kind, dedup_key, encode
    from monitoring.collector.wal import frame, group_record, segment_path

    table = generate(rows, seed=seed)
    columns = {name: table.column(name).to_pylist() for name in table.schema.names}
    rng = np.random.default_rng(seed)
    scores = np.clip(rng.beta(0.3, 30.0, rows) + np.asarray(columns["isFraud"]) * rng.uniform(0.2, 0.9, rows), 0, 1)
    wal.mkdir(parents=True, exist_ok=True)
    start = time.time() - 600.0
    seq, written = 0, 0
    out = segment_path(wal, 0).open("wb")
    group: list[bytes] = []

    def commit() -> None:
        nonlocal out, written
        record = frame(group_record(group))
        if written + len(record) > segment_bytes:
            out.close()
            out = segment_path(wal, seq - len(group)).open("wb")
            written = 0
        out.write(record)
        written += len(record)
        group.clear()

    for i in range(rows):
        txn = (
            f'{{"instances":[{{"step":{columns["step"][i]},"type":"{columns["type"][i]}","amount":{columns["amount"][i]},'
            f'"nameOrig":"{columns["nameOrig"][i]}","oldbalanceOrg":{columns["oldbalanceOrg"][i]},'
            f'"nameDest":"{columns["nameDest"][i]}","oldbalanceDest":{columns["oldbalanceDest"][i]}}}]}}'
        ).encode()
        score = float(scores[i])
        decision = "block" if score >= 0.5 else "review" if score >= 0.2 else "allow"
        reasons = '[{"reason":"amount","feature":"amount","contribution":1.0}]' if decision != "allow" else "[]"
        answer = (
            f'{{"predictions":[{{"fraud_probability":{score:.6f},"decision":"{decision}","model_version":"1",'
            f'"reasons":{reasons}}}]}}'
        ).encode()
        at = start + i * 0.0005
        for kind, body in ((Kind.REQUEST, txn), (Kind.RESPONSE, answer)):
            envelope = Envelope(
                seq, int(kind), f"vol-{i}", at, None, "champion", "fraud-detector", "local", "champion",
                "champion", None, body, dedup_key(f"vol-{i}", kind),
            )  # fmt: skip
            group.append(encode(envelope))
            seq += 1
            if len(group) == GROUP_EVENTS:
                commit()
    if group:
        commit()
    out.close()
    os.sync()
    return seq, start


def read_back(settings: Settings, since: datetime, until: datetime) -> dict[str, Any]:
    """In a fresh process: read the log back; time and peak RSS of that process."""
    code = (
        "import json, resource, time\n"
        "from datetime import datetime\n"
        "from fraud.settings import load_settings\n"
        "from monitoring.inference_log import read_log\n"
        "started = time.perf_counter()\n"
        f"frame = read_log(load_settings(), datetime.fromisoformat({since.isoformat()!r}),"
        f" datetime.fromisoformat({until.isoformat()!r}))\n"
        "seconds = time.perf_counter() - started\n"
        "print(json.dumps({'rows': len(frame), 'seconds': round(seconds, 2), 'matched': int(frame['matched'].sum()),"
        " 'peak_rss_mb': round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),"
        " 'frame_mb': round(frame.memory_usage(deep=True).sum() / 2**20, 1)}))\n"
    )
    env = {**os.environ, **settings.server_env(), "FRAUD_MONITOR_LOG_BUCKET": settings.monitor_log_bucket}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"reading the log back failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@contextlib.contextmanager
def volume_chain(
    settings: Settings, workdir: Path, rows: int, seed: int = 7, *, read_back_log: bool = True
) -> Iterator[tuple[Settings, datetime, datetime, dict[str, Any]]]:
    """Put ``rows`` logged predictions into the store through the collector; yield (settings, since, until, timings).

    The hook for drift and the daily report: time them on ``read_log(settings, since, until)`` inside the block.
    """
    settings = settings.model_copy(update={"monitor_log_bucket": "volume-log"})
    home = workdir / "volume"
    wal = home / "wal"
    log(f"volume: writing {2 * rows:,} acknowledged events into the write-ahead log (setup, not timed)")
    fill_started = time.perf_counter()
    events, start = fill_wal(wal, rows, seed, settings.collector_segment_bytes)
    fill_seconds = time.perf_counter() - fill_started
    wal_mb = sum(p.stat().st_size for p in wal.glob("wal-*.log")) / 2**20
    log(f"volume: {events:,} events, {wal_mb:.0f} MB of log in {fill_seconds:.1f} s; starting the collector")

    collector = Collector(settings, home, {})
    empty_start = collector.start(home / "empty-wal")  # the same process with nothing to replay: imports, bucket
    empty_cpu = collector.cpu_seconds()
    collector.stop()
    peak_rss = 0.0
    started = time.perf_counter()
    collector.port = pick_free_ports(1, HOST)[0]
    collector.process = CollectorProcess.start(
        settings, port=collector.port, wal_dir=wal, log_path=home / "collector.log", env={}
    )
    while True:
        with contextlib.suppress(psutil.Error):
            peak_rss = max(peak_rss, psutil.Process(collector.pid).memory_info().rss / 2**20)
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{collector.url}/healthz", timeout=1).status_code == 200:
                break
        if collector.process.process.poll() is not None:
            raise RuntimeError(f"collector exited; see {home / 'collector.log'}")
        time.sleep(0.2)
    collector.flush_all()
    to_store = time.perf_counter() - started
    with contextlib.suppress(psutil.Error):
        peak_rss = max(peak_rss, psutil.Process(collector.pid).memory_info().rss / 2**20)
    status = requests.get(f"{collector.url}/v1/status", timeout=10).json()
    cpu = collector.cpu_seconds()
    collector.stop()
    since = datetime.fromtimestamp(start - 60, UTC)
    until = datetime.fromtimestamp(start + rows * 0.0005 + 60, UTC)
    log(f"volume: all events in the store {to_store:.1f} s after the collector started")
    back = read_back(settings, since, until) if read_back_log else {"seconds": 0.0}
    timings = {
        "rows": rows,
        "events": events,
        "wal_mb": round(wal_mb, 1),
        "collector_start_to_all_in_store_s": round(to_store, 2),
        "collector_start_with_empty_log_s": round(empty_start, 2),
        "replay_join_write_s": round(to_store - empty_start, 2),
        "collector_cpu_s": round(cpu, 1),
        "collector_cpu_s_empty_start": round(empty_cpu, 1),
        "collector_peak_rss_mb_sampled": round(peak_rss, 1),
        "wal_bytes_left": status["wal_bytes"],
        "read_back": back,
        "store_and_read_s": round(to_store + back["seconds"], 2),
    }
    yield settings, since, until, timings


# --- the chain: logged predictions -> drift + daily report, and Evidently on the same rows ----------------------
CHAIN_COLUMNS = [
    "received_at", "model_name", "model_version", "arm", "endpoint", "step", "type", "amount", "oldbalanceOrg",
    "oldbalanceDest", "score", "decision", "reasons", "latency_ms",
]  # fmt: skip
"""What drift (`monitoring.drift.WINDOW_COLUMNS`, balances, segments) and the daily report read: not the account
names or the request ids, which are most of a million rows' bytes and reading time."""


class TreeMemory:
    """Peak of the summed RSS of this process's descendants (the servers and measured children it starts, not
    the harness itself, which may hold a benchmark's training data), sampled every 0.2 s in a thread."""

    def __init__(self) -> None:
        import threading

        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def sample(self) -> float:
        total = 0
        for process in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += process.memory_info().rss
        self.peak_mb = max(self.peak_mb, total / 2**20)
        return self.peak_mb

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.sample()


def chain_child(engine: str, since: datetime, until: datetime, folder: Path) -> dict[str, Any]:
    """One measured process: read the logged rows, then our drift + daily report, or Evidently's default report.

    Imports only what that work needs (the benchmark's own model training stays in the parent)."""
    import pandas as pd

    from fraud.evaluation.thresholds import Thresholds
    from monitoring import reference as reference_module

    started = time.perf_counter()
    settings = load_settings()
    thresholds = Thresholds.from_dict(json.loads((folder / "reference" / "thresholds.json").read_text()))
    reference = reference_module.from_frames(
        "bench",
        pd.read_parquet(folder / "reference" / "sample.parquet"),
        pd.read_parquet(folder / "reference" / "scores.parquet"),
        thresholds,
    )
    mark = time.perf_counter()
    frame = read_log(settings, since, until, columns=CHAIN_COLUMNS)
    timings: dict[str, Any] = {"rows": len(frame), "read_log_s": round(time.perf_counter() - mark, 2)}
    if engine == "ours":
        from monitoring import daily_report
        from monitoring.drift import DriftConfig, detect

        mark = time.perf_counter()
        result = detect(frame, reference, DriftConfig())
        timings["drift_s"] = round(time.perf_counter() - mark, 2)
        mark = time.perf_counter()
        report = daily_report.build(until.date(), frame, drift=result)
        daily_report.write(report, folder / "reports")
        timings["report_s"] = round(time.perf_counter() - mark, 2)
        timings["drift"] = result.drift
        timings["tests"] = result.tests
    else:
        from monitoring.evidently_report import run_report, save_report, verdict

        mark = time.perf_counter()
        snapshot = run_report(reference.sample, frame)
        found = verdict(snapshot)
        save_report(snapshot, folder / "evidently.html")
        timings["evidently_s"] = round(time.perf_counter() - mark, 2)
        timings["evidently_dataset_drift"] = found.dataset_drift
    timings["in_process_s"] = round(time.perf_counter() - started, 2)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    timings["cpu_s"] = round(usage.ru_utime + usage.ru_stime, 1)
    timings["peak_rss_mb"] = round(usage.ru_maxrss / 1024, 1)
    return timings


def run_chain_child(engine: str, settings: Settings, since: datetime, until: datetime, folder: Path) -> dict[str, Any]:
    """`chain_child` in a fresh process (imports included in its wall time)."""
    env = {**os.environ, **settings.server_env(), "FRAUD_MONITOR_LOG_BUCKET": settings.monitor_log_bucket}
    command = [
        sys.executable, "-m", "benchmarks.collector", "chain-child", "--engine", engine, "--since", since.isoformat(),
        "--until", until.isoformat(), "--workdir", str(folder),
    ]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{engine} child failed: {done.stderr[-2000:]}")
    measured: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    measured["process_wall_s"] = round(wall, 2)
    return measured


# --- entry point -------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["all", "throughput", "crash", "volume", "trivial-server", "chain-child"])
    parser.add_argument("--engine", choices=("ours", "evidently"), default="ours", help="chain-child: what to run")
    parser.add_argument("--since", help="chain-child: window start (ISO)")
    parser.add_argument("--until", help="chain-child: window end (ISO)")
    parser.add_argument("--seconds", type=float, default=20.0, help="throughput: measured seconds")
    parser.add_argument("--connections", type=int, default=64, help="keep-alive connections of the sender")
    parser.add_argument("--events", type=int, default=60_000, help="crash: events to send (half requests)")
    parser.add_argument("--kill-after", type=float, default=4.0, help="crash: seconds of load before SIGKILL")
    parser.add_argument("--rows", type=int, default=1_000_000, help="volume: logged predictions")
    parser.add_argument("--port", type=int, default=0, help="trivial-server: port")
    parser.add_argument("--workdir", type=Path, help="keep files here (default: a temporary directory)")
    args = parser.parse_args(argv)
    if args.command == "trivial-server":
        trivial_server(args.port)
        return 0
    if args.command == "chain-child":
        since, until = datetime.fromisoformat(args.since), datetime.fromisoformat(args.until)
        print(json.dumps(chain_child(args.engine, since, until, args.workdir)))
        return 0
    results: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        workdir = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="collector-bench-")))
        workdir.mkdir(parents=True, exist_ok=True)
        settings = stack.enter_context(private_store(workdir))
        if args.command in ("all", "throughput"):
            results["throughput"] = throughput(settings, workdir, args.seconds, args.connections)
            log(f"throughput: {json.dumps(results['throughput'])}")
        if args.command in ("all", "crash"):
            results["crash"] = crash(settings, workdir, args.events, args.kill_after, args.connections)
            log(f"crash: {json.dumps(results['crash'])}")
        if args.command in ("all", "volume"):
            with volume_chain(settings, workdir, args.rows) as (_, _, _, timings):
                results["volume"] = timings
            log(f"volume: {json.dumps(results['volume'])}")
    results["machine"] = {"cpus": os.cpu_count(), "load_average_1m": os.getloadavg()[0]}
    results["benchmark_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(results, indent=2))
    crash_result = results.get("crash")
    return 0 if crash_result is None or crash_result["exactly_once"] else 1


if __name__ == "__main__":
    sys.exit(main())
