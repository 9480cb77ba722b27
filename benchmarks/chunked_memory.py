"""Peak memory of the predictor while clients stream huge chunked bodies at it (issue 13, item 8).

A ``Transfer-Encoding: chunked`` body declares no length, so a cap on ``Content-Length`` alone lets it in whole:
before the cap applied as bodies stream in, eight clients sending 106 MB each took the predictor above the
chart's 1 GiB limit. This starts ``python -m serving`` on free loopback ports (the code of this checkout, and
with ``--compare DIR`` the code of another checkout, one after the other, same model), lets ``--clients``
clients each stream ``--megabytes`` MB of chunked body at once, samples the process's RSS every 20 ms, and
prints idle and peak RSS, what each client got back, and whether the server still answers afterwards::

    python -m benchmarks.chunked_memory --model-dir /tmp/model
    python -m benchmarks.chunked_memory --model-dir /tmp/model --compare /tmp/main-checkout   # before/after
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil  # type: ignore[import-untyped, unused-ignore]
import requests

from fraud.stack.ports import pick_free_ports
from serving.process import LOOPBACK, PredictorProcess
from serving.validation import EXAMPLE_TRANSACTION

REPO = Path(__file__).resolve().parents[1]
CHUNK = 1 << 16
V1_PATH = "/v1/models/fraud-detector:predict"


@dataclass
class ClientOutcome:
    sent: int = 0
    status: str = "no answer"


@dataclass
class Run:
    label: str
    idle_rss: int = 0
    peak_rss: int = 0
    seconds: float = 0.0
    alive_after: bool = False
    clients: list[ClientOutcome] = field(default_factory=list)


def _stream(port: int, total: int, outcome: ClientOutcome) -> None:
    """Send ``total`` bytes of chunked body (a JSON array opening, never closed) until done or answered."""
    head = (
        f"POST {V1_PATH} HTTP/1.1\r\nHost: predictor\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"%x\r\n%s\r\n" % (CHUNK, b"[" * CHUNK)
    try:
        with socket.create_connection((LOOPBACK, port), timeout=120) as connection:
            connection.sendall(head.encode())
            try:
                while outcome.sent < total:
                    connection.sendall(chunk)
                    outcome.sent += CHUNK
                connection.sendall(b"0\r\n\r\n")
            except OSError:
                pass  # the server answered and closed: read what it said
            answer = connection.recv(4096)
            outcome.status = answer.split(b"\r\n", 1)[0].decode(errors="replace") if answer else "closed, no answer"
    except OSError as exc:
        outcome.status = f"{type(exc).__name__}: {exc}"


def measure(label: str, cwd: Path, model_dir: Path, clients: int, megabytes: int, log_dir: Path) -> Run:
    run = Run(label)
    http_port, grpc_port = pick_free_ports(2, LOOPBACK)
    command = [sys.executable, "-m", "serving", "--http_port", str(http_port), "--grpc_port", str(grpc_port)]
    server = PredictorProcess.launch(
        [*command, "--model_dir", str(model_dir)],
        http_port,
        grpc_port,
        log_path=log_dir / f"{label}.log",
        cwd=cwd,
        env={"PYTHONUNBUFFERED": "1"},
        name=label,
    )
    try:
        server.wait_ready(timeout=900)  # a loaded machine may take minutes to import the libraries
        process = psutil.Process(server.process.pid)
        time.sleep(1.0)
        run.idle_rss = process.memory_info().rss
        run.peak_rss = run.idle_rss
        run.clients = [ClientOutcome() for _ in range(clients)]
        threads = [
            threading.Thread(target=_stream, args=(http_port, megabytes * 1_000_000, outcome), daemon=True)
            for outcome in run.clients
        ]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            run.peak_rss = max(run.peak_rss, process.memory_info().rss)
            time.sleep(0.02)
        run.seconds = time.monotonic() - started
        for _ in range(50):  # the server may still be parsing what it took in
            run.peak_rss = max(run.peak_rss, process.memory_info().rss)
            time.sleep(0.02)
        answer = requests.post(server.v1_url, json={"instances": [EXAMPLE_TRANSACTION]}, timeout=60)
        run.alive_after = answer.status_code == 200
    finally:
        server.stop()
    return run


def _mib(value: int) -> str:
    return f"{value / 2**20:,.0f} MiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, required=True, help="An MLflow model directory to serve.")
    parser.add_argument("--clients", type=int, default=8, help="Clients streaming at once.")
    parser.add_argument("--megabytes", type=int, default=100, help="Chunked body size per client, MB.")
    parser.add_argument("--compare", type=Path, help="Another checkout (e.g. main's) measured the same way first.")
    parser.add_argument("--log-dir", type=Path, default=REPO / ".fraud" / "bench-chunked", help="Server logs.")
    args = parser.parse_args(argv)
    checkouts = ([("compare", args.compare.resolve())] if args.compare else []) + [("this", REPO)]
    runs = []
    for label, cwd in checkouts:
        print(f"{label} ({cwd}): {args.clients} clients × {args.megabytes} MB chunked …", flush=True)
        runs.append(measure(label, cwd, args.model_dir.resolve(), args.clients, args.megabytes, args.log_dir))
    print(f"\nPeak RSS of the predictor while {args.clients} clients stream {args.megabytes} MB chunked bodies at once")
    print(f"{'checkout':10} {'idle RSS':>10} {'peak RSS':>10} {'growth':>10} {'seconds':>8}  answers; alive after")
    for run in runs:
        statuses = sorted({c.status for c in run.clients})
        sent = sum(c.sent for c in run.clients)
        print(
            f"{run.label:10} {_mib(run.idle_rss):>10} {_mib(run.peak_rss):>10} "
            f"{_mib(run.peak_rss - run.idle_rss):>10} {run.seconds:8.1f}  {statuses} "
            f"({sent / 1e6:,.0f} MB sent in all); {'yes' if run.alive_after else 'NO'}"
        )
    if len(runs) == 2 and runs[1].peak_rss - runs[1].idle_rss > 0:
        ratio = (runs[0].peak_rss - runs[0].idle_rss) / (runs[1].peak_rss - runs[1].idle_rss)
        print(f"growth ratio compare/this: {ratio:.1f}×")
    return 0 if all(run.alive_after for run in runs[-1:]) else 1


if __name__ == "__main__":
    sys.exit(main())
