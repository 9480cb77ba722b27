"""The measured process of the 1M-row chain (`benchmarks/drift.py chain`): read the logged rows, then our drift and
daily report, or Evidently's default drift report on the same rows.

    python -m benchmarks.log_chain --engine ours --since T --until T --workdir DIR [--follow DIR/store-complete]

It imports only what its work needs (pandas, pyarrow, the store client, scipy for the tests; no training code,
no matplotlib) and prints one JSON line: per phase its wall interval (absolute ``time.time()`` stamps, so the
harness can place them on the chain's own clock) and its CPU seconds (``time.process_time``: every thread of
this process), and the process's peak RSS.

``--follow FILE``: start reading while the collector is still writing. The Parquet objects of the window are
read as they land (each once; objects are never rewritten) until FILE exists (the harness creates it once the
collector reports every acknowledged event in the store), then once more, and only then are drift and the report
computed, on every row. This is the overlap a drift job gets when it starts with the collector's flushes instead
of after them; the verdict is the same as reading everything at the end.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Final

CHAIN_COLUMNS: Final = [
    "received_at", "model_version", "arm", "step", "type", "amount", "oldbalanceOrg", "oldbalanceDest", "score",
    "decision", "reasons", "latency_ms",
]  # fmt: skip
"""What drift (`monitoring.drift.WINDOW_COLUMNS`, balances, segments by arm and version) and the daily report
read: not the account names, the request ids, model name or endpoint, which are most of a million rows' bytes."""


class Phases:
    """Wall interval and CPU seconds of each named phase, in order."""

    def __init__(self) -> None:
        self.phases: dict[str, dict[str, float]] = {}

    def run(self, name: str, work: Callable[[], Any]) -> Any:
        wall, cpu = time.time(), time.process_time()
        result = work()
        self.add(name, wall, cpu)
        return result

    def add(self, name: str, wall_started: float, cpu_started: float) -> None:
        phase = self.phases.setdefault(name, {"start": wall_started, "end": wall_started, "wall_s": 0.0, "cpu_s": 0.0})
        now = time.time()
        phase["end"] = now
        phase["wall_s"] = round(phase["wall_s"] + now - wall_started, 3)
        phase["cpu_s"] = round(phase["cpu_s"] + time.process_time() - cpu_started, 3)
        phase["peak_rss_mb_so_far"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def measure(engine: str, since: datetime, until: datetime, folder: Path, follow: Path | None) -> dict[str, Any]:
    phases = Phases()
    wall, cpu = time.time(), time.process_time()
    import pandas as pd

    from fraud.evaluation.thresholds import Thresholds
    from fraud.settings import load_settings
    from monitoring import reference as reference_module
    from monitoring.inference_log import JOIN_COLUMNS, LogReader

    if engine == "ours":
        from monitoring import daily_report
        from monitoring.drift import DriftConfig, detect
    phases.add("imports", wall, cpu)

    def load_reference() -> Any:
        thresholds = Thresholds.from_dict(json.loads((folder / "reference" / "thresholds.json").read_text()))
        return reference_module.from_frames(
            "bench",
            pd.read_parquet(folder / "reference" / "sample.parquet"),
            pd.read_parquet(folder / "reference" / "scores.parquet"),
            thresholds,
        )

    reference = phases.run("reference", load_reference)
    reader = LogReader(load_settings(), since, until, columns=[*CHAIN_COLUMNS, *JOIN_COLUMNS])
    objects_early, waited = 0, 0.0
    if follow is not None:
        while True:
            complete = follow.exists()  # checked before listing: the listing after it sees every object
            if complete:
                break
            objects_early += phases.run("read_while_collector_writes", reader.refresh)
            pause = time.time()
            time.sleep(0.25)
            waited += time.time() - pause
    objects_late = phases.run("read_after_store_complete", reader.refresh)
    frame = phases.run("read_after_store_complete", lambda: reader.frame(CHAIN_COLUMNS, release=True))
    result: dict[str, Any] = {
        "rows": len(frame),
        "objects_read_while_writing": objects_early,
        "objects_read_after": objects_late,
        "idle_while_collector_writes_s": round(waited, 2),
    }
    if engine == "ours":
        verdict = phases.run("drift", lambda: detect(frame, reference, DriftConfig()))

        def report() -> None:
            built = daily_report.build(until.date(), frame, drift=verdict)
            daily_report.write(built, folder / "reports")

        phases.run("daily_report", report)
        result["drift"] = verdict.drift
        result["tests"] = verdict.tests
    else:
        from monitoring.evidently_report import run_report, save_report, verdict

        def evidently() -> bool:
            snapshot = run_report(reference.sample, frame)
            save_report(snapshot, folder / "evidently.html")
            return bool(verdict(snapshot).dataset_drift)

        result["evidently_dataset_drift"] = phases.run("evidently_report", evidently)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["phases"] = phases.phases
    result["cpu_s"] = round(usage.ru_utime + usage.ru_stime, 2)
    result["peak_rss_mb"] = round(usage.ru_maxrss / 1024, 1)
    result["finished_at"] = time.time()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=("ours", "evidently"), required=True, help="What to run on the rows.")
    parser.add_argument("--since", required=True, help="Window start (ISO, with zone).")
    parser.add_argument("--until", required=True, help="Window end (ISO, with zone).")
    parser.add_argument("--workdir", type=Path, required=True, help="Holds reference/ (written by the harness).")
    parser.add_argument("--follow", type=Path, default=None, help="Read while the collector writes, until FILE exists.")
    args = parser.parse_args(argv)
    since, until = datetime.fromisoformat(args.since), datetime.fromisoformat(args.until)
    print(json.dumps(measure(args.engine, since, until, args.workdir, args.follow)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
