"""Collector benchmarks: throughput, kill -9 mid-load, and 1,000,000 logged predictions to the store and back.

    python -m benchmarks.collector all                  # the three below, one private SeaweedFS
    python -m benchmarks.collector throughput --seconds 60 --connections 128
    python -m benchmarks.collector crash --events 60000 --kill-after 4
    python -m benchmarks.collector volume --rows 1000000

- throughput: a separate sender process (`benchmarks.collector_events`, asyncio + httptools, keep-alive
  connections) sends binary CloudEvents (request and response halves of single-transaction V1 calls) for a fixed
  time (default 60 s, after 3 s of warm-up; flushes to Parquet and new log segments happen meanwhile); printed:
  acknowledged events/s and the lowest/highest second, the collector's CPU per event, and the same sender for
  the same time against a server on the same HTTP layer that only answers 200 (the ceiling of HTTP on this
  machine, with its CPU per event): the ratio is the cost of durability, dedup and the join.
- crash: the sender sends events; the collector is SIGKILLed mid-load, restarted on the same write-ahead log,
  and everything not acknowledged is sent again; then every acknowledged event must be in the store exactly once
  (counts printed; exits 1 if not).
- volume: the write-ahead log is filled with the request and response events of ``rows`` generated PaySim
  transactions, exactly as the collector writes them when it acknowledges (its own `WriteAheadLog`), so the
  collector starts with 2 × rows acknowledged events not yet in the store. Timed: collector start → everything
  joined and written as Parquet; then `read_log` of all rows in a fresh process (time, peak RSS). The HTTP path
  is measured by `throughput`; at its rate the events themselves would take 2 × rows / (events/s) to arrive.

`prepare_volume` and `Replay` are the hooks of `benchmarks/drift.py chain`, which times drift and the daily
report on the same rows while the collector writes them.
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


def _steadiness(per_second: list[int]) -> dict[str, float]:
    """Lowest, median and highest acknowledgements per second over the run's whole seconds."""
    if not per_second:
        return {}
    values = np.asarray(per_second, dtype=np.float64)
    return {"min": float(values.min()), "median": float(np.median(values)), "max": float(values.max())}


def throughput(settings: Settings, workdir: Path, seconds: float, connections: int) -> dict[str, Any]:
    """Acknowledged events/s for `seconds`, and the same sender against a do-nothing server on the same HTTP layer.

    Each event is answered 200 only once its write-ahead group is on disk (``O_DSYNC``), as always; the flush loop
    writes Parquet to the store meanwhile (every ``collector_flush_seconds`` or ``collector_flush_rows``).
    """
    load_before = os.getloadavg()
    collector = Collector(settings, workdir / "throughput", {})
    started = collector.start(workdir / "throughput" / "wal")
    log(f"throughput: collector ready in {started:.1f} s; warming up 3 s, then {seconds:.0f} s measured")
    send(collector.port, workdir / "warm.bin", first=10**9, duration=3, connections=connections)
    cpu_before = collector.cpu_seconds()
    result = send(collector.port, workdir / "acked.bin", first=0, duration=seconds, connections=connections)
    cpu = collector.cpu_seconds() - cpu_before
    metrics = requests.get(f"{collector.url}/metrics", timeout=10).text
    collector.stop()
    commits = next(float(line.split()[-1]) for line in metrics.splitlines() if line.startswith("collector_wal_commits"))
    flushes = next(float(line.split()[-1]) for line in metrics.splitlines() if line.startswith("collector_flushes"))
    log(f"throughput: collector {result['events_per_s']:,.0f} events/s; now the do-nothing server for {seconds:.0f} s")

    port = pick_free_ports(1, HOST)[0]
    ceiling = subprocess.Popen([sys.executable, "-m", "benchmarks.collector", "trivial-server", "--port", str(port)])
    try:
        for _ in range(200):
            with contextlib.suppress(requests.RequestException):
                requests.get(f"http://{HOST}:{port}/", timeout=1)
                break
            time.sleep(0.1)
        send(port, workdir / "warm.bin", first=0, duration=3, connections=connections)
        ceiling_cpu_before = process_cpu(ceiling.pid)
        baseline = send(port, workdir / "trivial.bin", first=0, duration=seconds, connections=connections)
        ceiling_cpu = process_cpu(ceiling.pid) - ceiling_cpu_before
    finally:
        ceiling.kill()
        ceiling.wait()
    rate, ceiling_rate = result["events_per_s"], baseline["events_per_s"]
    return {
        "seconds": seconds,
        "connections": connections,
        "events_per_s": rate,
        "per_second": _steadiness(result["per_second"]),
        "acked": result["acked"],
        "errors": result["errors"] + result["connection_errors"],
        "collector_cpu_us_per_event": round(cpu / max(result["acked"], 1) * 1e6, 1),
        "collector_cores": round(cpu / max(result["seconds"], 1e-9), 2),
        "events_per_fsync": round(result["acked"] / max(commits, 1), 1),
        "parquet_flushes": int(flushes),
        "http_only_ceiling_per_s": ceiling_rate,
        "http_only_per_second": _steadiness(baseline["per_second"]),
        "http_only_cpu_us_per_event": round(ceiling_cpu / max(baseline["acked"], 1) * 1e6, 1),
        "ratio_to_http_ceiling": round(rate / ceiling_rate, 3) if ceiling_rate else None,
        "sender_cores": result["generator_cpu"],
        "target_5000_met": rate >= 5000,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }


def print_throughput(found: dict[str, Any]) -> None:
    steady, ceiling = found["per_second"], found["http_only_per_second"]
    print(
        f"THROUGHPUT: {found['events_per_s']:,.0f} acknowledged events/s sustained over {found['seconds']:.0f} s "
        f"with {found['connections']} keep-alive connections (target 5,000; each second between "
        f"{steady.get('min', 0):,.0f} and {steady.get('max', 0):,.0f}, median {steady.get('median', 0):,.0f}); "
        f"{found['errors']} errors; collector {found['collector_cpu_us_per_event']:.1f} CPU us per event "
        f"({found['collector_cores']:.2f} cores), {found['events_per_fsync']:.1f} events per synchronous write, "
        f"{found['parquet_flushes']} Parquet flushes"
    )
    print(
        f"  do-nothing HTTP server, same sender, same run: {found['http_only_ceiling_per_s']:,.0f}/s (each second "
        f"{ceiling.get('min', 0):,.0f}-{ceiling.get('max', 0):,.0f}), {found['http_only_cpu_us_per_event']:.1f} CPU us "
        f"per event; collector/ceiling {found['ratio_to_http_ceiling']}; sender {found['sender_cores']:.2f} cores; "
        f"load average before {found['load_average_before']}, after {found['load_average_after']} "
        f"({os.cpu_count()} CPUs)"
    )


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


@dataclass
class Volume:
    """A write-ahead log filled with the acknowledged events of ``rows`` logged predictions (none in the store)."""

    settings: Settings
    home: Path
    wal: Path
    rows: int
    events: int
    first_event_at: float
    wal_mb: float
    fill_s: float

    @property
    def since(self) -> datetime:
        return datetime.fromtimestamp(self.first_event_at - 60, UTC)

    @property
    def until(self) -> datetime:
        return datetime.fromtimestamp(self.first_event_at + self.rows * 0.0005 + 60, UTC)

    def child_env(self) -> dict[str, str]:
        """What a reader of these rows needs: the store's address and keys, the log's bucket."""
        return {
            **os.environ,
            **self.settings.server_env(),
            "FRAUD_MONITOR_LOG_BUCKET": self.settings.monitor_log_bucket,
        }


def prepare_volume(settings: Settings, workdir: Path, rows: int, seed: int = 7) -> Volume:
    """Fill a write-ahead log with 2 x ``rows`` acknowledged events (setup, not timed)."""
    settings = settings.model_copy(update={"monitor_log_bucket": "volume-log"})
    home = workdir / "volume"
    wal = home / "wal"
    log(f"volume: writing {2 * rows:,} acknowledged events into the write-ahead log (setup, not timed)")
    started = time.perf_counter()
    events, first = fill_wal(wal, rows, seed, settings.collector_segment_bytes)
    fill_seconds = time.perf_counter() - started
    wal_mb = sum(p.stat().st_size for p in wal.glob("wal-*.log")) / 2**20
    log(f"volume: {events:,} events, {wal_mb:.0f} MB of log in {fill_seconds:.1f} s")
    return Volume(settings, home, wal, rows, events, first, round(wal_mb, 1), round(fill_seconds, 1))


def process_cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


class Replay:
    """The collector started on a volume's write-ahead log (as after a restart), watched until all is stored.

    "All stored": ``/v1/status`` shows nothing joined waiting, no half waiting and no flush in progress (a flush
    lag of 0), so every acknowledged event's row is in a committed Parquet object.
    """

    def __init__(self, volume: Volume) -> None:
        self.volume = volume
        self.port = pick_free_ports(1, HOST)[0]
        self.started = time.time()
        self.process = CollectorProcess.start(
            volume.settings, port=self.port, wal_dir=volume.wal, log_path=volume.home / "collector.log", env={}
        )
        self.peak_rss_mb = 0.0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def _sample(self) -> None:
        with contextlib.suppress(psutil.Error):
            self.peak_rss_mb = max(self.peak_rss_mb, psutil.Process(self.process.process.pid).memory_info().rss / 2**20)

    def wait_stored(self, poll: float = 0.1) -> dict[str, Any]:
        """Seconds (since the process started) until it answered, and until every event was in the store."""
        while True:
            self._sample()
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    break
            if self.process.process.poll() is not None:
                raise RuntimeError(f"collector exited; see {self.volume.home / 'collector.log'}")
            time.sleep(poll)
        replayed = time.time()
        while True:
            self._sample()
            status = requests.get(f"{self.url}/v1/status", timeout=30).json()
            if status["ready_rows"] == 0 and status["pending_halves"] == 0 and status["flush_lag_seconds"] == 0:
                break
            time.sleep(poll)
        stored = time.time()
        rss_now = psutil.Process(self.process.process.pid).memory_info().rss / 2**20
        metrics = requests.get(f"{self.url}/metrics", timeout=30).text
        written = next(
            float(line.split()[-1]) for line in metrics.splitlines() if line.startswith("collector_rows_written")
        )
        return {
            "started_at": self.started,
            "replayed_at": replayed,
            "all_in_store_at": stored,
            "replayed_s": round(replayed - self.started, 2),
            "all_in_store_s": round(stored - self.started, 2),
            "rows_written": int(written),
            "cpu_s": round(process_cpu(self.process.process.pid), 2),
            "peak_rss_mb_sampled": round(self.peak_rss_mb, 1),
            "rss_mb_when_stored": round(rss_now, 1),
        }

    def stop(self) -> None:
        self.process.stop()


def empty_start(volume: Volume) -> tuple[float, float]:
    """Seconds and CPU seconds of the same collector starting with nothing to replay (imports, bucket, port)."""
    collector = Collector(volume.settings, volume.home, {})
    seconds = collector.start(volume.home / "empty-wal")
    cpu = collector.cpu_seconds()
    collector.stop()
    return seconds, cpu


def volume(settings: Settings, workdir: Path, rows: int) -> dict[str, Any]:
    """Replay ``rows`` logged predictions' events into the store, then read them back in a fresh process."""
    filled = prepare_volume(settings, workdir, rows)
    empty_seconds, empty_cpu = empty_start(filled)
    replay = Replay(filled)
    stored = replay.wait_stored()
    replay.stop()
    log(f"volume: all events in the store {stored['all_in_store_s']:.1f} s after the collector started")
    back = read_back(filled.settings, filled.since, filled.until)
    return {
        "rows": rows,
        "events": filled.events,
        "wal_mb": filled.wal_mb,
        "collector_start_to_all_in_store_s": stored["all_in_store_s"],
        "collector_replayed_s": stored["replayed_s"],
        "collector_start_with_empty_log_s": round(empty_seconds, 2),
        "collector_cpu_s": stored["cpu_s"],
        "collector_cpu_s_empty_start": round(empty_cpu, 2),
        "collector_peak_rss_mb_sampled": stored["peak_rss_mb_sampled"],
        "rows_written": stored["rows_written"],
        "read_back": back,
    }


# --- the chain's process-tree measures -----------------------------------------------------------------------------
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

    def reset(self) -> None:
        self.peak_mb = 0.0

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.sample()


def descendants_cpu() -> dict[int, float]:
    """CPU seconds so far of every live descendant, by pid (to take the store's share of a stretch of work)."""
    used: dict[int, float] = {}
    for process in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            used[process.pid] = float(times.user + times.system)
    return used


def start_chain_child(volume: Volume, engine: str, workdir: Path, follow: Path | None) -> subprocess.Popen[str]:
    """`benchmarks.log_chain` in a fresh process (its imports are part of what is timed)."""
    command = [
        sys.executable, "-m", "benchmarks.log_chain", "--engine", engine, "--since", volume.since.isoformat(),
        "--until", volume.until.isoformat(), "--workdir", str(workdir),
    ]  # fmt: skip
    if follow is not None:
        command += ["--follow", str(follow)]
    return subprocess.Popen(command, env=volume.child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish_chain_child(child: subprocess.Popen[str], engine: str) -> dict[str, Any]:
    out, err = child.communicate()
    if child.returncode != 0:
        raise RuntimeError(f"{engine} child failed: {err[-3000:]}")
    measured: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return measured


# --- entry point -------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["all", "throughput", "crash", "volume", "trivial-server"])
    parser.add_argument(
        "--seconds", type=float, default=60.0, help="throughput: measured seconds (each of collector and ceiling)"
    )
    parser.add_argument(
        "--connections", type=int, default=128, help="keep-alive connections of the sender (each waits for its answer)"
    )
    parser.add_argument("--events", type=int, default=60_000, help="crash: events to send (half requests)")
    parser.add_argument("--kill-after", type=float, default=4.0, help="crash: seconds of load before SIGKILL")
    parser.add_argument("--rows", type=int, default=1_000_000, help="volume: logged predictions")
    parser.add_argument("--port", type=int, default=0, help="trivial-server: port")
    parser.add_argument("--workdir", type=Path, help="keep files here (default: a temporary directory)")
    args = parser.parse_args(argv)
    if args.command == "trivial-server":
        trivial_server(args.port)
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
            results["volume"] = volume(settings, workdir, args.rows)
            log(f"volume: {json.dumps(results['volume'])}")
    results["machine"] = {"cpus": os.cpu_count(), "load_average_1m": os.getloadavg()[0]}
    results["benchmark_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(results, indent=2))
    if "throughput" in results:
        print_throughput(results["throughput"])
    crash_result = results.get("crash")
    if crash_result is not None:
        print(
            f"CRASH: kill -9 after {args.kill_after:.0f} s of load; {crash_result['acked_total']:,} of "
            f"{crash_result['events']:,} events acknowledged in all ({crash_result['acked_before_kill']:,} before the "
            f"kill, {crash_result['resent_after_restart']:,} resent); {crash_result['rows_in_store']:,} rows in the "
            f"store for {crash_result['transactions']:,} transactions; request ids more than once "
            f"{crash_result['request_ids_more_than_once']}, acknowledged requests missing "
            f"{crash_result['acked_requests_missing']}, responses missing {crash_result['acked_responses_missing']}: "
            f"exactly once = {crash_result['exactly_once']}"
        )
    return 0 if crash_result is None or crash_result["exactly_once"] else 1


if __name__ == "__main__":
    sys.exit(main())
