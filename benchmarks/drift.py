"""Benchmark the drift verdicts: false alarms on healthy traffic, detection of known shifts, and Evidently beside.

The world: a generated month (seed 1, `--month-rows` rows) trains an XGBoost model on the strict features with
fixed parameters (what the pipeline's tuner would refine; the monitor only reads scores and decisions), the
thresholds are chosen on its validation days (15-17) and the reference is built from them exactly as the
evaluate step builds it (20k-row sample + every held-out row's score).

- ``false-alarms``: one healthy month per window (seeds 1000, 1001, ... never the reference's), a random window
  of each size from its validation days, scored and decided by the model. A window alarms when any column
  drifts. Reported with the labels in the window (matured) and without.
- ``detection``: the same for each generator scenario (`fraud.data.scenarios`) at several strengths, over
  ``--seeds`` months each (seeds 2000, ...): the share of windows that alarm.
- Evidently's default DataDriftPreset runs on the first ``--evidently-windows`` windows of each cell (it takes
  seconds per window), against the same 20k reference sample: its "any column drifted" and "dataset drift"
  (half the columns) verdicts are printed beside ours.

Run: ``.venv/bin/python benchmarks/drift.py false-alarms --windows 200`` (about 15 min on two free cores),
``.venv/bin/python benchmarks/drift.py detection --seeds 50``; ``--json FILE`` keeps the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.compute as pc

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fraud.data.generator import generate  # noqa: E402
from fraud.data.scenarios import Scenario, get_scenario  # noqa: E402
from fraud.evaluation.thresholds import Thresholds, choose_thresholds  # noqa: E402
from fraud.features import FeatureSpec, build_features, fit_spec  # noqa: E402
from fraud.modeling import NativeModel, load_native, save_native  # noqa: E402
from fraud.split import SplitBoundaries, forward_split  # noqa: E402
from fraud.tuning import fit_model  # noqa: E402
from monitoring import reference as reference_module  # noqa: E402
from monitoring.drift import DriftConfig, DriftResult, detect  # noqa: E402
from monitoring.reference import Reference  # noqa: E402
from monitoring.retrain import RetrainPolicy, RetrainState, observe  # noqa: E402

XGB_PARAMS = {
    "max_depth": 5,
    "learning_rate": 0.1,
    "min_child_weight": 1.0,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "reg_lambda": 1.0,
    "scale_pos_weight": 1.0,
    "n_estimators": 150,
}
SCENARIOS: tuple[tuple[str, dict[str, Any]], ...] = (
    # one strength of each scenario first, then the others (a run cut short still covers every scenario)
    ("amount_shift", {"amount_factor": 1.5}),
    ("type_mix", {}),
    ("smurfing", {}),
    ("fraud_rate", {"fraud_rate_multiplier": 3.0}),
    ("amount_shift", {"amount_factor": 1.2}),
    ("type_mix", {"type_shares": "TRANSFER=0.126"}),
    ("fraud_rate", {"fraud_rate_multiplier": 10.0}),
)


@dataclass
class World:
    spec: FeatureSpec
    model: NativeModel
    thresholds: Thresholds
    reference: Reference
    month_rows: int

    def scored_validation(self, seed: int, scenario: Scenario | None = None, rows: int | None = None) -> pd.DataFrame:
        """The validation days of a generated month (`rows` rows, default the reference month's), scored."""
        table = generate(rows or self.month_rows, seed=seed, scenario=scenario)
        bounds = SplitBoundaries()  # the reference's days; no check that they hold fraud (a month may have none)
        steps = table["step"]
        block = table.filter(
            pc.and_(pc.greater(steps, bounds.train_end_step), pc.less_equal(steps, bounds.valid_end_step))
        )
        frame: pd.DataFrame = block.to_pandas()
        frame["score"] = self.model.predict_proba(build_features(block, self.spec))
        frame["decision"] = self.thresholds.decide(frame["score"].to_numpy())
        return frame


def build_world(month_rows: int, cache: Path) -> World:
    """Train (or load from `cache`) the benchmark's model and build its reference from the validation days."""
    blocks = forward_split(generate(month_rows, seed=1), SplitBoundaries())
    model_dir = cache / f"model-{month_rows}"
    if (model_dir / "spec.json").is_file():
        model = load_native(model_dir, nthread=2)
        spec = FeatureSpec.from_json((model_dir / "spec.json").read_text())
    else:
        spec = fit_spec(blocks["train"], "strict")
        started = time.perf_counter()
        model = fit_model(
            "xgboost",
            XGB_PARAMS,
            build_features(blocks["train"], spec),
            blocks["train"]["isFraud"].to_numpy(),
            feature_names=spec.names,
        )
        print(f"trained the benchmark model in {time.perf_counter() - started:.0f} s", flush=True)
        save_native(model, model_dir)
        (model_dir / "spec.json").write_text(spec.to_json())
    held_out = blocks["validation"].to_pandas()
    scores = model.predict_proba(build_features(blocks["validation"], spec))
    thresholds = choose_thresholds(scores, held_out["isFraud"].to_numpy(), held_out["amount"].to_numpy())
    reference = reference_module.build("bench", held_out, scores, thresholds)
    print(
        f"reference: {len(reference.sample):,} sample rows, {len(reference.scores):,} held-out scores, "
        f"block rate {np.mean(reference.scores['decision'] == 'block'):.4%}, "
        f"review rate {np.mean(reference.scores['decision'] == 'review'):.4%}",
        flush=True,
    )
    return World(spec, model, thresholds, reference, month_rows)


def window_of(frame: pd.DataFrame, rows: int, rng: np.random.Generator) -> pd.DataFrame:
    take = np.sort(rng.choice(len(frame), min(rows, len(frame)), replace=False))
    chosen: pd.DataFrame = frame.iloc[take].reset_index(drop=True)
    return chosen


@dataclass
class Cell:
    """Counts of one (case, window size) cell."""

    windows: int = 0
    ours: int = 0
    ours_no_labels: int = 0
    evidently_windows: int = 0
    evidently_any: int = 0
    evidently_dataset: int = 0
    seconds: float = 0.0
    columns: dict[str, int] | None = None

    def add(self, labelled: DriftResult, unlabelled: DriftResult, seconds: float) -> None:
        self.windows += 1
        self.ours += labelled.drift
        self.ours_no_labels += unlabelled.drift
        self.seconds += seconds
        self.columns = self.columns or {}
        for column in labelled.drifted:
            self.columns[column.name] = self.columns.get(column.name, 0) + 1

    def to_dict(self) -> dict[str, Any]:
        def share(k: int, n: int) -> float | None:
            return k / n if n else None

        return {
            "windows": self.windows,
            "ours": share(self.ours, self.windows),
            "ours_without_labels": share(self.ours_no_labels, self.windows),
            "evidently_windows": self.evidently_windows,
            "evidently_any_column": share(self.evidently_any, self.evidently_windows),
            "evidently_dataset_drift": share(self.evidently_dataset, self.evidently_windows),
            "ours_seconds_per_window": self.seconds / max(self.windows, 1),
            "drifted_columns": dict(sorted((self.columns or {}).items(), key=lambda kv: -kv[1])),
        }


UNLABELLED = True
"""Also judge each window without its labels (``--labels-only`` turns it off to halve the cost)."""
EVIDENTLY_ONLY = False
"""Run only Evidently, on the first ``--evidently-windows`` windows (the same windows as a full run's; with
``--records``, to add Evidently's verdicts to the records of a run made without them)."""

RECORDS: list[Path] = []
"""Where to append one JSON line per test of every judged window (``--records FILE``): enough to re-judge the
windows offline with other floors or another alpha (Holm is recomputed from the window's p-values), without
regenerating months. Written as the run goes, so an interrupted run keeps what it measured."""


def _record(case: str, size: int, window: int, labels: bool, result: DriftResult) -> None:
    if not RECORDS:
        return
    lines = []
    for column in result.columns:
        if column.tested:
            lines.append(
                {
                    "case": case,
                    "size": size,
                    "window": window,
                    "labels": labels,
                    "name": column.name,
                    "kind": column.kind,
                    "method": column.method,
                    "effect": column.statistic,
                    "threshold": column.threshold,
                    "p_value": column.p_value,
                    "p_beyond": column.p_beyond,
                    "drift": column.drift,
                    "test_statistic": column.details.get("test_statistic"),
                    "df": column.details.get("df"),
                    "rate": column.details.get("rate"),
                    "reference_rate": column.details.get("reference_rate"),
                    "rows": column.rows,
                    "reference_rows": column.reference_rows,
                }
            )
    with RECORDS[0].open("a") as out:
        out.writelines(json.dumps(line) + "\n" for line in lines)


def run_cell(
    cell: Cell, world: World, window: pd.DataFrame, config: DriftConfig, evidently: bool, case: str = ""
) -> None:
    if EVIDENTLY_ONLY:
        cell.windows += 1
    else:
        started = time.perf_counter()
        labelled = detect(window, world.reference, config)
        seconds = time.perf_counter() - started
        unlabelled = detect(window.drop(columns=["isFraud"]), world.reference, config) if UNLABELLED else labelled
        cell.add(labelled, unlabelled, seconds)
        _record(case, len(window), cell.windows - 1, True, labelled)
        if UNLABELLED:
            _record(case, len(window), cell.windows - 1, False, unlabelled)
    if evidently:
        from monitoring.evidently_report import run_report, verdict

        found = verdict(run_report(world.reference.sample, window))
        cell.evidently_windows += 1
        cell.evidently_any += found.any_column
        cell.evidently_dataset += found.dataset_drift
        if RECORDS:
            line = {
                "case": case,
                "size": len(window),
                "window": cell.windows - 1,
                "labels": True,
                "name": "(evidently)",
                "evidently_any": found.any_column,
                "evidently_dataset": found.dataset_drift,
                "evidently_drifted": [c.name for c in found.columns.values() if c.drift],
            }
            with RECORDS[0].open("a") as out:
                out.write(json.dumps(line) + "\n")


def false_alarms(
    world: World, sizes: Sequence[int], windows: int, months: int, evidently_windows: int
) -> dict[str, Any]:
    """`windows` windows per size from `months` healthy months (windows / months random windows per month)."""
    cells = {size: Cell() for size in sizes}
    config = DriftConfig()
    started = time.perf_counter()
    per_month = -(-windows // months)
    index = 0
    for month_index in range(months):
        month = world.scored_validation(1000 + month_index)
        rng = np.random.default_rng(month_index)
        for _ in range(per_month):
            if index >= windows or (EVIDENTLY_ONLY and index >= evidently_windows):
                break
            for size in sizes:
                window = window_of(month, size, rng)
                run_cell(cells[size], world, window, config, index < evidently_windows, "no drift")
            index += 1
        if EVIDENTLY_ONLY and index >= evidently_windows:
            break
        rates = "  ".join(f"{s:,}: {c.ours}/{c.windows}" for s, c in cells.items())
        print(
            f"  {month_index + 1}/{months} months ({time.perf_counter() - started:.0f} s)  alarms {rates}", flush=True
        )
    return {str(size): cell.to_dict() for size, cell in cells.items()}


def detection(
    world: World, sizes: Sequence[int], seeds: int, evidently_windows: int, only: Sequence[str], rows: int | None
) -> dict[str, Any]:
    """Detection rate per scenario case and window size; `only` keeps cases whose name or label is listed."""
    config = DriftConfig()
    results: dict[str, Any] = {}
    cases = [
        (name + ("(" + ", ".join(f"{k}={v}" for k, v in params.items()) + ")" if params else ""), name, params)
        for name, params in SCENARIOS
    ]
    if only:  # in the order asked for
        cases = [case for wanted in only for case in cases if wanted in (case[0], case[1])]
    for label, name, params in cases:
        scenario = get_scenario(name, **params)
        cells = {size: Cell() for size in sizes}
        started = time.perf_counter()
        for index in range(seeds):
            month = world.scored_validation(2000 + index, scenario, rows)
            rng = np.random.default_rng(index)
            for size in sizes:
                window = window_of(month, size, rng)
                run_cell(cells[size], world, window, config, index < evidently_windows, label)
        rates = "  ".join(f"{s:,}: {c.ours}/{c.windows}" for s, c in cells.items())
        print(f"  {label}: {time.perf_counter() - started:.0f} s  detected {rates}", flush=True)
        results[label] = {str(size): cell.to_dict() for size, cell in cells.items()}
    return results


# --- the retraining trigger over runs of consecutive windows --------------------------------------------------------
RETRAIN_CASES: tuple[tuple[str, str | None, dict[str, Any]], ...] = (
    ("no drift", None, {}),
    ("amount_shift(amount_factor=1.5)", "amount_shift", {"amount_factor": 1.5}),
    ("type_mix", "type_mix", {}),
)


def retrain_runs(
    world: World, runs: int, windows: int, rows: int, policy: RetrainPolicy, month_rows: int | None = None
) -> dict[str, Any]:
    """Feed `windows` hourly windows of one month per run to the retraining policy; count triggers per run.

    A sustained shift should fire exactly once per run (the cooldown outlasts the run), healthy traffic never.
    Each window's labelled frauds count as new frauds (labels matured in the window). A run that never fires is
    told apart: no sustained drift, or sustained drift held back by too few new labelled frauds.
    """
    results: dict[str, Any] = {}
    config = DriftConfig()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for label, name, params in RETRAIN_CASES:
        scenario = get_scenario(name, **params) if name else None
        fired_per_run: list[int] = []
        first_at: list[int] = []
        reasons: dict[str, int] = {}
        drifting_windows = held_back = 0
        frauds_per_run: list[int] = []
        started = time.perf_counter()
        for run in range(runs):
            month = world.scored_validation(3000 + run, scenario, month_rows)
            rng = np.random.default_rng(run)
            state = RetrainState()
            fired = frauds = 0
            sustained = False
            for index in range(windows):
                window = window_of(month, rows, rng)
                result = detect(window, world.reference, config)
                frauds += int(np.sum(window["isFraud"] > 0))
                drifting_windows += result.drift
                state, trigger = observe(
                    state,
                    policy,
                    now=start + timedelta(hours=index),
                    drift=result.drift,
                    drifted=[c.name for c in result.drifted],
                    new_frauds=int(np.sum(window["isFraud"] > 0)),
                )
                sustained = sustained or state.drift_windows >= policy.sustained_windows
                if trigger is not None:
                    fired += 1
                    if fired == 1:
                        first_at.append(index + 1)
                    key = trigger.reason.split(" (")[0]
                    reasons[key] = reasons.get(key, 0) + 1
            fired_per_run.append(fired)
            frauds_per_run.append(frauds)
            held_back += fired == 0 and sustained and frauds < policy.min_new_frauds
        counts = {str(k): fired_per_run.count(k) for k in sorted(set(fired_per_run))}
        print(f"  {label}: {time.perf_counter() - started:.0f} s  triggers per run {counts}", flush=True)
        results[label] = {
            "runs": runs,
            "windows_per_run": windows,
            "rows_per_window": rows,
            "runs_by_trigger_count": counts,
            "exactly_once": fired_per_run.count(1) / runs,
            "never": fired_per_run.count(0) / runs,
            "never_held_back_by_frauds": held_back,
            "drifting_windows": drifting_windows / (runs * windows),
            "labelled_frauds_per_run": {
                "min": min(frauds_per_run),
                "median": float(np.median(frauds_per_run)),
                "max": max(frauds_per_run),
            },
            "first_trigger_window": {str(k): first_at.count(k) for k in sorted(set(first_at))},
            "reasons": reasons,
        }
    return results


# --- the 1M chain: logged predictions -> drift + daily report, and Evidently on the same rows ----------------------
def _save_reference(reference: Reference, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    reference.sample.to_parquet(folder / "sample.parquet")
    reference.scores.to_parquet(folder / "scores.parquet")
    (folder / "thresholds.json").write_text(json.dumps(reference.thresholds.to_dict()))


def chain(rows: int, cache: Path, workdir: Path, evidently: bool = True) -> dict[str, Any]:
    """1M logged predictions from "acknowledged" to "drift and daily report done", then Evidently on the same rows.

    Start (t = 0): a collector process starts on a write-ahead log holding the request and response events of
    `rows` logged predictions, every one acknowledged (durable on disk, as the collector writes them when it
    answers 200) and none in the object store yet: the state after a restart, the collector's worst case (it
    also pays its imports and the log's replay). The drift job (`benchmarks.log_chain`, a fresh process: its
    imports count) starts at the same moment, loads the reference and reads the Parquet objects as the collector
    commits them. End: the drift verdict and the daily report (HTML + JSON) are written, computed on every row
    after the collector reported all of them in the store. Setup not timed: the benchmark model and reference,
    the store, filling the log. Evidently's default report runs afterwards on the same rows (not overlapped).
    """
    from benchmarks.collector import (
        Replay,
        TreeMemory,
        descendants_cpu,
        finish_chain_child,
        prepare_volume,
        private_store,
        start_chain_child,
    )

    world = build_world(1_000_000, cache)
    _save_reference(world.reference, workdir / "reference")
    results: dict[str, Any] = {}
    with TreeMemory() as memory, private_store(workdir) as settings:
        volume = prepare_volume(settings, workdir, rows)
        marker = workdir / "store-complete"
        marker.unlink(missing_ok=True)
        load_before = os.getloadavg()
        store_cpu_before = descendants_cpu()  # the store's processes (nothing else runs yet)
        memory.reset()
        replay = Replay(volume)  # t = 0
        child = start_chain_child(volume, "ours", workdir, follow=marker)
        collector = replay.wait_stored()
        marker.touch()
        ours = finish_chain_child(child, "ours")
        ended = time.time()
        store_cpu_after = descendants_cpu()
        peak = memory.sample()
        load_after = os.getloadavg()
        replay.stop()
        store_cpu = sum(store_cpu_after[pid] - cpu for pid, cpu in store_cpu_before.items() if pid in store_cpu_after)
        started = replay.started
        results["setup"] = {"rows": rows, "events": volume.events, "wal_mb": volume.wal_mb, "fill_s": volume.fill_s}
        results["collector"] = collector
        results["ours"] = ours
        results["chain"] = {
            "wall_s": round(ended - started, 2),
            "cpu_s": round(collector["cpu_s"] + ours["cpu_s"] + store_cpu, 2),
            "collector_cpu_s": collector["cpu_s"],
            "drift_job_cpu_s": ours["cpu_s"],
            "store_cpu_s": round(store_cpu, 2),
            "all_in_store_s": collector["all_in_store_s"],
            "after_store_complete_s": round(ended - collector["all_in_store_at"], 2),
            "tree_peak_rss_mb": round(peak, 1),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in load_after],
        }
        if evidently:
            memory.reset()
            mark = time.time()
            theirs = finish_chain_child(start_chain_child(volume, "evidently", workdir, None), "evidently")
            theirs["process_wall_s"] = round(time.time() - mark, 2)
            theirs["tree_peak_rss_mb"] = round(memory.sample(), 1)
            theirs["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
            results["evidently"] = theirs
    return results


def _print_chain(results: dict[str, Any]) -> None:
    """Each phase on the chain's clock (seconds from t = 0), its wall and CPU seconds; totals; Evidently beside."""
    collector, ours, total = results["collector"], results["ours"], results["chain"]
    t0 = collector["started_at"]
    print(f"\n{results['setup']['rows']:,} logged predictions ({results['setup']['events']:,} acknowledged events, "
          f"{results['setup']['wal_mb']:.0f} MB of write-ahead log); t = 0: the collector starts on that log and the "
          "drift job starts beside it")  # fmt: skip
    print(f"{'phase':<46} {'from s':>7} {'to s':>7} {'wall s':>7} {'CPU s':>7}")
    rows = [
        ("collector: imports + replay until it answers", 0.0, collector["replayed_s"], None),
        ("collector: remaining flushes until all stored", collector["replayed_s"], collector["all_in_store_s"], None),
        ("collector process in all", 0.0, collector["all_in_store_s"], collector["cpu_s"]),
    ]
    for name, phase in ours["phases"].items():
        rows.append((f"drift job: {name.replace('_', ' ')}", phase["start"] - t0, phase["end"] - t0, phase["cpu_s"]))
    rows.append(("drift job process in all (rusage)", 0.0, ours["finished_at"] - t0, ours["cpu_s"]))
    rows.append(("object store (SeaweedFS) during the chain", 0.0, total["wall_s"], total["store_cpu_s"]))
    for name, start, end, cpu in rows:
        cpu_text = "" if cpu is None else f"{cpu:7.2f}"
        print(f"{name:<46} {start:7.2f} {end:7.2f} {end - start:7.2f} {cpu_text:>7}")
    phase_walls = {name: phase["wall_s"] for name, phase in ours["phases"].items()}
    print(
        f"CHAIN: {ours['rows']:,} rows, acknowledged -> drift + daily report done in {total['wall_s']:.1f} s wall "
        f"(target 60), {total['cpu_s']:.1f} CPU s (collector {total['collector_cpu_s']:.1f} + drift job "
        f"{total['drift_job_cpu_s']:.1f} + store {total['store_cpu_s']:.1f}); all in the store at "
        f"{total['all_in_store_s']:.1f} s, then {total['after_store_complete_s']:.1f} s to the report; peak summed RSS "
        f"of every process started {total['tree_peak_rss_mb']:,.0f} MB (target 2,048); verdict drift="
        f"{ours['drift']} over {ours['tests']} tests"
    )
    print(
        f"  peak RSS: collector {collector['peak_rss_mb_sampled']:,.0f} MB (sampled; "
        f"{collector['rss_mb_when_stored']:,.0f} MB once all was stored), drift job {ours['peak_rss_mb']:,.0f} MB; "
        f"drift {phase_walls.get('drift', 0):.2f} s + daily report {phase_walls.get('daily_report', 0):.2f} s; "
        f"load average before {total['load_average_before']}, after {total['load_average_after']} "
        f"({os.cpu_count()} CPUs)"
    )
    busy = sum(wall for name, wall in phase_walls.items() if name != "read_while_collector_writes")
    print(
        f"  one after the other instead (the drift job started once all was stored), the sum of the measured phases "
        f"would be about {collector['all_in_store_s'] + busy:.1f} s: collector {collector['all_in_store_s']:.1f} s + "
        f"drift job {busy:.1f} s of imports, reference, reading, drift and report (reading what the overlap already "
        f"read is not in it, so this understates the sequential wall)"
    )
    theirs = results.get("evidently")
    if theirs:
        ev = theirs["phases"]
        ours_work = phase_walls.get("drift", 0) + phase_walls.get("daily_report", 0)
        ev_work = ev["evidently_report"]["wall_s"]
        print(
            f"EVIDENTLY beside, on the same {theirs['rows']:,} rows (fresh process, after the chain): default "
            f"DataDriftPreset report {ev_work:.1f} s wall / {ev['evidently_report']['cpu_s']:.1f} CPU s "
            f"(ours: drift + daily report {ours_work:.1f} s, ratio {ev_work / max(ours_work, 1e-9):.1f}x); its process "
            f"{theirs['process_wall_s']:.1f} s wall, {theirs['cpu_s']:.1f} CPU s with imports and reading, peak RSS "
            f"{theirs['peak_rss_mb']:,.0f} MB; dataset drift={theirs['evidently_dataset_drift']}; load average after "
            f"{theirs['load_average_after']}"
        )


def _print_table(title: str, results: dict[str, Any]) -> None:
    print(f"\n{title}")
    print(f"{'case':<44} {'rows':>8} {'n':>4} {'ours':>7} {'no lbl':>7} {'ev n':>5} {'ev any':>7} {'ev set':>7}")

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.1%}"

    for case, by_size in results.items():
        for size, cell in by_size.items():
            print(
                f"{case:<44} {int(size):>8,} {cell['windows']:>4} {pct(cell['ours']):>7} "
                f"{pct(cell['ours_without_labels']):>7} {cell['evidently_windows']:>5} "
                f"{pct(cell['evidently_any_column']):>7} {pct(cell['evidently_dataset_drift']):>7}"
            )


REJUDGED_FLOORS: dict[str, Callable[[pd.DataFrame], pd.Series]] = {
    # the PSI floors a record can be re-judged with offline: its Pearson X², df and both sizes give p_beyond
    "type_psi_floor": lambda tests: tests["name"] == "type",
    "hour_psi_floor": lambda tests: tests["name"] == "hour",
    "numeric_psi_floor": lambda tests: tests["kind"] == "numeric",
    "score_psi_floor": lambda tests: (tests["kind"] == "score") & (tests["method"] != "fisher"),
    "label_psi_floor": lambda tests: tests["name"] == "fraud_amount",
}


def parse_floors(texts: Sequence[str]) -> dict[str, float]:
    """``type_psi_floor=0.005`` pairs; only the PSI floors of `REJUDGED_FLOORS` (a rate floor's exact test needs
    the counts, which a rerun gives)."""
    floors = {}
    for text in texts:
        name, _, value = text.partition("=")
        if name not in REJUDGED_FLOORS or not value:
            raise SystemExit(f"--floor {text}: give NAME=VALUE with NAME one of {', '.join(REJUDGED_FLOORS)}")
        floors[name] = float(value)
    return floors


def with_floors(tests: pd.DataFrame, floors: dict[str, float]) -> pd.DataFrame:
    """The recorded tests with other floors: the floor and the p-value of "no larger than the floor" recomputed
    (`stats.beyond_floor_p` on the recorded X², its df and both sizes, as the test computed it)."""
    from monitoring.stats import beyond_floor_p

    tests = tests.copy()
    for name, floor in floors.items():
        chosen = REJUDGED_FLOORS[name](tests) & tests["test_statistic"].notna()
        tests.loc[chosen, "threshold"] = floor
        picked = tests.loc[chosen, ["test_statistic", "df", "rows", "reference_rows"]].to_numpy(dtype=np.float64)
        tests.loc[chosen, "p_beyond"] = [
            beyond_floor_p(statistic, int(df), rows, reference_rows, floor)
            for statistic, df, rows, reference_rows in picked
        ]
    return tests


def judged(window: pd.DataFrame, alpha: float) -> np.ndarray:
    """Which of a window's recorded tests drift: Holm over max(p_value, p_beyond), and the effect past its floor
    (as `monitoring.drift` judges a window)."""
    from monitoring.stats import holm

    p_judged = np.maximum(window["p_value"].to_numpy(float), window["p_beyond"].to_numpy(float))
    effect, floor = window["effect"].to_numpy(float), window["threshold"].to_numpy(float)
    one_sided = (window["name"].str.startswith("score_above") | (window["name"] == "fraud_rate")).to_numpy()
    ratio = (window["method"] == "fisher").to_numpy()
    beyond = np.where(ratio, (effect >= floor) | (~one_sided & (effect <= 1 / floor)), effect >= floor)
    drifts: np.ndarray = (holm(p_judged) <= alpha) & beyond
    return drifts


def table_from_records(paths: Sequence[Path], alpha: float, floors: dict[str, float] | None = None) -> dict[str, Any]:
    """The benchmark's table from ``--records`` files (several runs' records combine; each window counts once).

    ``ours`` is the recorded verdict with labels, or with other ``floors`` the same windows re-judged (`judged`
    over the recorded p-values, those of the re-floored tests recomputed: `with_floors`); ``ours_without_labels``
    re-judges without the label tests (fraud rate, frauds' amounts); the Evidently columns count the windows
    Evidently ran on (``--evidently-windows``, ``--evidently-only``).
    """
    frame = pd.concat([pd.read_json(path, lines=True) for path in paths if path.stat().st_size], ignore_index=True)
    if "evidently_any" not in frame.columns:
        frame["evidently_any"] = frame["evidently_dataset"] = None
    keys = ["case", "size", "window"]
    evidently = frame.loc[frame["name"] == "(evidently)"].drop_duplicates(keys)
    tests = frame.loc[(frame["name"] != "(evidently)") & frame["labels"].astype(bool)]
    tests = tests.drop_duplicates([*keys, "name"])
    if floors:
        tests = with_floors(tests, floors)
    results: dict[str, Any] = {}
    for (case, size), cell in tests.groupby(["case", "size"], sort=False):
        ours = without = 0
        columns: dict[str, int] = {}
        for _, window in cell.groupby("window"):
            drifts = judged(window, alpha) if floors else window["drift"].astype(bool).to_numpy()
            ours += bool(drifts.any())
            for name in window.loc[drifts, "name"]:
                columns[name] = columns.get(name, 0) + 1
            without += bool(judged(window.loc[window["kind"] != "label"], alpha).any())
        windows = int(cell["window"].nunique())
        ev = evidently.loc[(evidently["case"] == case) & (evidently["size"] == size)]
        results.setdefault(str(case), {})[str(size)] = {
            "windows": windows,
            "ours": ours / windows,
            "ours_without_labels": without / windows,
            "evidently_windows": len(ev),
            "evidently_any_column": float(ev["evidently_any"].mean()) if len(ev) else None,
            "evidently_dataset_drift": float(ev["evidently_dataset"].mean()) if len(ev) else None,
            "drifted_columns": dict(sorted(columns.items(), key=lambda kv: -kv[1])),
        }
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "mode", choices=("false-alarms", "detection", "retrain", "table", "chain"), help="What to measure."
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="chain: logged predictions.")
    parser.add_argument("--workdir", type=Path, default=None, help="chain: working directory (default: temporary).")
    parser.add_argument("--no-evidently", action="store_true", help="chain: skip Evidently's report on the same rows.")
    parser.add_argument("--month-rows", type=int, default=1_000_000, help="Rows of each generated month.")
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="Window sizes (rows).")
    parser.add_argument("--windows", type=int, default=200, help="false-alarms: healthy windows per size.")
    parser.add_argument(
        "--months", type=int, default=200, help="false-alarms: healthy months the windows are drawn from."
    )
    parser.add_argument("--seeds", type=int, default=50, help="detection: months per scenario.")
    parser.add_argument(
        "--scenario-rows",
        type=int,
        default=None,
        help="detection, retrain: rows of each generated month (default --month-rows; its days 15-17 must hold "
        "the largest window, about 19 %% of the month).",
    )
    parser.add_argument(
        "--scenarios", nargs="*", default=(), help="detection: only these scenario names or case labels."
    )
    parser.add_argument("--runs", type=int, default=50, help="retrain: runs (months) per case.")
    parser.add_argument("--run-windows", type=int, default=8, help="retrain: consecutive hourly windows per run.")
    parser.add_argument("--window-rows", type=int, default=10_000, help="retrain: rows per window.")
    parser.add_argument("--evidently-windows", type=int, default=20, help="Windows per cell also run by Evidently.")
    parser.add_argument("--cache", type=Path, default=ROOT / ".fraud" / "bench-drift", help="Model cache directory.")
    parser.add_argument("--json", type=Path, default=None, help="Also write the numbers to this JSON file.")
    parser.add_argument("--labels-only", action="store_true", help="Judge windows with their labels only.")
    parser.add_argument(
        "--evidently-only", action="store_true", help="Run only Evidently on the first --evidently-windows windows."
    )
    parser.add_argument(
        "--from-records", type=Path, nargs="+", default=(), help="table: the --records files of earlier runs."
    )
    parser.add_argument(
        "--records", type=Path, default=None, help="Append every test of every window to this JSON-lines file."
    )
    parser.add_argument(
        "--floor",
        action="append",
        default=[],
        help="table: re-judge the records with this PSI floor, e.g. type_psi_floor=0.005 (repeatable).",
    )
    args = parser.parse_args(argv)
    global UNLABELLED, EVIDENTLY_ONLY  # noqa: PLW0603 - run-wide switches set once from the command line
    UNLABELLED = not args.labels_only
    EVIDENTLY_ONLY = args.evidently_only
    if args.records:
        args.records.parent.mkdir(parents=True, exist_ok=True)
        RECORDS.append(args.records)
    if args.mode == "table":
        floors = parse_floors(args.floor)
        from_records = table_from_records(args.from_records, DriftConfig().alpha, floors)
        rejudged = f", re-judged with {', '.join(f'{k}={v:g}' for k, v in floors.items())}" if floors else ""
        _print_table(f"from {', '.join(str(p) for p in args.from_records)}{rejudged}", from_records)
        print(
            "\nours = any column drifts, labels matured in the window; no lbl = the same windows re-judged without the "
            "label tests; ev any / ev set = Evidently DataDriftPreset defaults on the first 'ev n' windows: any column "
            "drifted / dataset drift (half the columns)."
        )
        for case, by_size in from_records.items():
            for size, cell in by_size.items():
                if cell["drifted_columns"]:
                    top = ", ".join(f"{k} {v}" for k, v in list(cell["drifted_columns"].items())[:5])
                    print(f"  {case} {int(size):,}: {top}")
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"mode": "table", "floors": floors, "results": from_records}, indent=2))
        return 0
    if args.mode == "chain":
        import tempfile

        with tempfile.TemporaryDirectory(prefix="drift-chain-") as tmp:
            workdir = args.workdir or Path(tmp)
            workdir.mkdir(parents=True, exist_ok=True)
            chained = chain(args.rows, args.cache, workdir, evidently=not args.no_evidently)
        _print_chain(chained)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"mode": "chain", "results": chained}, indent=2, default=str))
        return 0
    world = build_world(args.month_rows, args.cache)
    if args.mode == "retrain":
        policy = RetrainPolicy()
        retrained = retrain_runs(world, args.runs, args.run_windows, args.window_rows, policy, args.scenario_rows)
        print(
            f"\nretraining trigger: policy {policy.sustained_windows} drifting windows in a row, "
            f">= {policy.min_new_frauds} new labelled frauds, cooldown {policy.cooldown}; "
            f"{args.run_windows} hourly windows of {args.window_rows:,} rows per run; "
            f"{time.process_time():.0f} s of CPU, load average {os.getloadavg()[0]:.1f}"
        )
        print(
            f"{'case':<36} {'runs':>5} {'never':>7} {'once':>7} {'twice+':>7} {'drifting':>9} {'held back':>9}  "
            "frauds per run (min/median/max); first trigger at window"
        )
        for case, cell in retrained.items():
            more = sum(n for k, n in cell["runs_by_trigger_count"].items() if int(k) >= 2)
            frauds = cell["labelled_frauds_per_run"]
            print(
                f"{case:<36} {cell['runs']:>5} {cell['never']:>7.1%} {cell['exactly_once']:>7.1%} "
                f"{more / cell['runs']:>7.1%} {cell['drifting_windows']:>9.1%} {cell['never_held_back_by_frauds']:>9}  "
                f"{frauds['min']}/{frauds['median']:g}/{frauds['max']}; {cell['first_trigger_window']}"
            )
        print(
            "drifting = share of windows judged drifting; held back = runs that never fired although drift was "
            "sustained, because they held fewer new labelled frauds than the policy needs"
        )
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"mode": "retrain", "results": retrained}, indent=2))
        return 0
    if args.mode == "false-alarms":
        sizes = args.sizes or [200, 1_000, 10_000, 100_000]
        results = {"no drift": false_alarms(world, sizes, args.windows, args.months, args.evidently_windows)}
        _print_table(f"false-alarm rate per window ({args.windows} windows from {args.months} healthy months)", results)
    else:
        sizes = args.sizes or [1_000, 10_000, 100_000]
        results = detection(world, sizes, args.seeds, args.evidently_windows, args.scenarios, args.scenario_rows)
        _print_table("detection rate per window", results)
    print(
        "\nours = any column drifts (Holm family at alpha 0.01 + effect floors), labels matured in the window; "
        "no lbl = the same windows without labels; ev any / ev set = Evidently 0.7.23 DataDriftPreset defaults: "
        "any column drifted / dataset drift (half the columns), on the first 'ev n' windows only."
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({"mode": args.mode, "month_rows": args.month_rows, "results": results}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
