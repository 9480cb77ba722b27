"""Benchmark the PaySim generator: rows per second and peak memory when writing Parquet.

Each measurement runs in a fresh Python process, so its peak resident set size (``ru_maxrss``) belongs to that
measurement alone; tracemalloc would miss numpy's and Arrow's native allocations. Every measurement is one
function in `MEASUREMENTS`, run by the child process and reporting a dict; add new ones (e.g. the ingest of the
written file) the same way.

The ingest measurements start a private local stack (own state directory and ports) and time the generated
file's way into the store: read, validate every row, fingerprint, write canonical Parquet, upload with manifest.

Run: ``.venv/bin/python benchmarks/generate.py [--sizes 1000000,6362620] [--seed 0]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DEFAULT_SIZES = (1_000_000, 6_362_620)

Measurement = Callable[[int, int, Path], dict[str, Any]]


def _peak_rss_mb() -> float:
    """Peak resident set size of this process in MB (Linux reports ru_maxrss in kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_generate_parquet(rows: int, seed: int, directory: Path) -> dict[str, Any]:
    """Generate `rows` rows and write them to Parquet (zstd); the time covers generation and writing (the
    ``+imports`` column adds importing the generator: numpy, scipy, pyarrow)."""
    from fraud.data.generator import write

    path = directory / f"paysim-{rows}.parquet"
    start = time.perf_counter()
    write(path, rows, seed=seed)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "rows_per_s": rows / seconds, "file_mb": path.stat().st_size / 1e6}


def measure_ingest_parquet(rows: int, seed: int, directory: Path) -> dict[str, Any]:
    """Ingest the file `measure_generate_parquet` wrote: read, validate every row, fingerprint, write the canonical
    Parquet and upload it with its manifest to the (private) local stack's S3 store."""
    del seed
    from fraud.data.ingest import ingest
    from fraud.settings import get_settings

    path = directory / f"paysim-{rows}.parquet"
    start = time.perf_counter()
    result = ingest(str(path), get_settings())
    seconds = time.perf_counter() - start
    if result.manifest.rows != rows:
        raise RuntimeError(f"ingested {result.manifest.rows} rows, expected {rows}")
    return {"seconds": seconds, "rows_per_s": rows / seconds, "file_mb": result.manifest.size_bytes / 1e6}


MEASUREMENTS: dict[str, Measurement] = {
    "generate_parquet": measure_generate_parquet,
    "ingest_parquet": measure_ingest_parquet,
}


def child(name: str, rows: int, seed: int, directory: Path) -> None:
    """Run one measurement in this (fresh) process and print its result as JSON."""
    started = time.perf_counter()
    result = MEASUREMENTS[name](rows, seed, directory)
    result.update(
        measurement=name, rows=rows, process_seconds=time.perf_counter() - started, peak_rss_mb=_peak_rss_mb()
    )
    print(json.dumps(result))


def run_measurement(name: str, rows: int, seed: int, directory: Path, env: dict[str, str]) -> dict[str, Any]:
    """One measurement in a fresh subprocess (so its peak memory is its own)."""
    command = [sys.executable, __file__, "--child", name, "--rows", str(rows), "--seed", str(seed)]
    command += ["--directory", str(directory)]
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--sizes",
        default=",".join(str(s) for s in DEFAULT_SIZES),
        help="comma-separated row counts (default: 1000000,6362620)",
    )
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    parser.add_argument("--child", choices=sorted(MEASUREMENTS), help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--directory", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.rows, args.seed, args.directory)
        return 0
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    header = ("measurement", "rows", "seconds", "+imports", "rows/s", "peak RSS MB", "file MB")
    print(
        f"{header[0]:<18} {header[1]:>10} {header[2]:>8} {header[3]:>8} {header[4]:>10} {header[5]:>11} {header[6]:>8}"
    )
    with tempfile.TemporaryDirectory(prefix="paysim-bench-") as tmp, _private_stack(Path(tmp)) as env:
        for rows in sizes:
            for name in MEASUREMENTS:
                r = run_measurement(name, rows, args.seed, Path(tmp), env)
                print(
                    f"{name:<18} {rows:>10,} {r['seconds']:>8.2f} {r['process_seconds']:>8.2f} "
                    f"{r['rows_per_s']:>10,.0f} {r['peak_rss_mb']:>11,.0f} {r.get('file_mb', 0):>8.1f}",
                    flush=True,
                )
    return 0


@contextmanager
def _private_stack(directory: Path) -> Iterator[dict[str, str]]:
    """A local stack of its own (own home and ports) for the ingest measurements; the children's environment."""
    from fraud.settings import load_settings
    from fraud.stack.local import LocalStack, private_stack_overrides

    overrides = private_stack_overrides(directory / "fraud-home")
    stack = LocalStack(load_settings(**overrides))
    stack.up()
    try:
        settings = load_settings(**overrides)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLFLOW_", "FRAUD_"))}
        env |= settings.server_env()
        env |= {f"FRAUD_{k.upper()}": str(v) for k, v in overrides.items() if k != "home"}
        yield env
    finally:
        stack.down()


if __name__ == "__main__":
    raise SystemExit(main())
