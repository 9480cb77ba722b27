"""Drift of a window of scored traffic against a model version's reference, with verdicts that do not cry wolf.

What is tested (each a two-sample test from `monitoring.stats`, all in one family):

- per feature: ``amount`` and the balances on the reference's quantile bins plus top-1 %/0.1 % tail bins;
  ``type`` (the mix, a prevalence shift in PaySim since fraud only exists in TRANSFER and CASH_OUT);
  ``hour`` (hour of day from ``step``); ``day`` (day of month from ``step``) is reported, not tested: a live
  window always lies after the reference's days;
- the score: its distribution on quantile bins, and its upper tail (share above the reference's p99 and
  p99.9, one-sided exact tests: more high scores is what a new attack looks like);
- decisions: block and review rates (Fisher's exact test, right at 0.04 %);
- segments: amount and score per transaction type; score and block rate per arm and per model version when
  the window holds several;
- with matured labels in the window: the fraud rate and the amounts of the frauds.

Two guards keep a healthy model from paging anyone:

1. **Multiplicity and sample size.** Every test's p-value is exact or valid at its sample size, and the
   whole window is one Holm family at `DriftConfig.alpha`: the chance that a window with no drift raises any
   alert is at most alpha, whatever the number of tests and segments.
2. **Practical size.** At 100k rows every real difference is significant, including the month-to-month
   variation of healthy traffic (hourly volume levels move between days; the share of top scores with them).
   Each test therefore has a floor (a PSI, or a rate ratio) and a column drifts only when the difference is
   shown to *exceed the floor*: a minimum-effect test (`stats.beyond_floor_p`, noncentral chi-square or
   Fisher's noncentral hypergeometric) whose p-value enters the Holm family. Unlike "significant and the
   observed PSI passes the floor", it accounts for both sample sizes: an observed PSI is biased upwards by
   about (K-1)(1/n + 1/m), so a 200-row window or a reference of 60 frauds shows a large PSI by chance alone.

Time of day is handled by post-stratification: the reference rows are reweighted so that their hour-of-day
mix is the window's before every other column is compared, so a window of night traffic is compared with
night traffic. The hour mix itself is its own test (with a floor set by how much it varies between healthy
days). A weighted reference enters the tests at its effective size (`stats.kish_size`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from fraud.errors import DataValidationError
from fraud.schema import HOURS_PER_DAY, TRANSACTION_TYPES
from monitoring import stats
from monitoring.reference import Reference, decision_codes, type_codes

Kind = Literal["numeric", "categorical", "time", "score", "rate", "label"]

WINDOW_COLUMNS: Final = ("step", "type", "amount", "score", "decision")
"""What a window must hold: the transaction's decision-time fields the tests read, and the served answer."""
BALANCE_COLUMNS: Final = ("oldbalanceOrg", "oldbalanceDest")
TAIL_LEVELS: Final = (0.99, 0.999)


@dataclass(frozen=True)
class DriftConfig:
    """How strict the verdicts are. The defaults were calibrated on generated months (`benchmarks/drift.py`):
    on 200 healthy windows per size (from 100 months) they alarmed on 1 window of 200 rows and on none of 1,000,
    5,000, 20,000 or 100,000 rows (the type floor's 0.005 re-judged from those windows' records).

    Attributes:
        alpha: family-wise false-alarm rate per window (Holm over every test of the window).
        bins: quantile bins of numeric columns and of the score (plus the two tail bins).
        numeric_psi_floor: smallest PSI of amount or a balance that counts as drift.
        score_psi_floor: smallest PSI of the score distribution that counts as drift.
        type_psi_floor: smallest PSI of the type mix that counts as drift. 0.005: 2.5x the largest divergence
            between a healthy month's type mix and the reference's seen in 200 healthy 100k-row windows (0.002);
            at 0.01 a TRANSFER share going from 8.4 % to 12.6 % (PSI ~0.015) went unseen at every window size,
            since against a 20k-row reference the test cannot show 0.015 to exceed 0.01.
        hour_psi_floor: smallest PSI of the hour-of-day mix that counts as drift (healthy months differ by up
            to ~0.37 in generated data: hourly volume levels are drawn per day).
        rate_ratio_floor: a decision rate, tail share or fraud rate drifts when its ratio to the reference is
            at least this, or (two-sided tests) at most its inverse.
        label_psi_floor: smallest PSI of the frauds' amounts that counts as drift.
        min_segment_rows: segments (a type, an arm, a version) with fewer window rows are not tested.
        seed: seed of the Monte-Carlo exact tests, so a verdict is reproducible.
    """

    alpha: float = 0.01
    bins: int = 20
    numeric_psi_floor: float = 0.02
    score_psi_floor: float = 0.05
    type_psi_floor: float = 0.005
    hour_psi_floor: float = 0.5
    rate_ratio_floor: float = 2.0
    label_psi_floor: float = 0.1
    min_segment_rows: int = 200
    seed: int = 0


@dataclass(frozen=True)
class ColumnResult:
    """One tested (or reported) column: the numbers behind its verdict, so the verdict can be argued with.

    ``statistic`` is the effect (PSI, or the rate ratio window/reference) and ``threshold`` its floor.
    ``p_value`` tests "no difference", ``p_beyond`` "a difference no larger than the floor"; the column drifts
    when the larger of the two, Holm-adjusted over the window's family (``p_adjusted``), is at most ``alpha``
    and the observed effect passes the floor (for a ratio: at least the floor, or at most its inverse for
    two-sided tests).
    """

    name: str
    feature: str
    kind: Kind
    segment: str | None
    method: str
    statistic: float
    threshold: float
    drift: bool
    p_value: float
    p_beyond: float
    p_adjusted: float
    alpha: float
    rows: int
    reference_rows: float
    tested: bool = True
    note: str = ""
    details: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = _jsonable(asdict(self))
        return data


@dataclass(frozen=True)
class DriftResult:
    """The verdict on one window: drift if any column drifts."""

    drift: bool
    rows: int
    reference_version: str
    alpha: float
    tests: int
    columns: list[ColumnResult]
    unmatched_hour_rows: int = 0
    window: dict[str, Any] = field(default_factory=dict)

    @property
    def drifted(self) -> list[ColumnResult]:
        return [c for c in self.columns if c.drift]

    def column(self, name: str) -> ColumnResult:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "drift": self.drift,
            "rows": self.rows,
            "reference_version": self.reference_version,
            "alpha": self.alpha,
            "tests": self.tests,
            "drifted": [c.name for c in self.drifted],
            "unmatched_hour_rows": self.unmatched_hour_rows,
            "window": _jsonable(self.window),
            "columns": [c.to_dict() for c in self.columns],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def _jsonable(value: Any) -> Any:
    """Plain JSON values: numpy scalars to Python, non-finite floats to None (JSON has no inf or NaN)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


@dataclass(frozen=True)
class _Pending:
    """A test computed but not yet judged (judging needs every p-value of the window)."""

    name: str
    feature: str
    kind: Kind
    segment: str | None
    outcome: stats.TestOutcome
    floor: float
    ratio: bool
    two_sided: bool
    details: dict[str, float] = field(default_factory=dict)


def _hours(step: npt.ArrayLike) -> npt.NDArray[np.int64]:
    return np.mod(np.asarray(step, dtype=np.int64), HOURS_PER_DAY)


def _hour_weights(reference_hours: np.ndarray, window_hours: np.ndarray) -> np.ndarray:
    """Weight per reference row that gives the reference the window's hour-of-day mix (0 for unwanted hours)."""
    ref_counts = np.bincount(reference_hours, minlength=HOURS_PER_DAY).astype(np.float64)
    cur_counts = np.bincount(window_hours, minlength=HOURS_PER_DAY).astype(np.float64)
    per_hour = np.zeros(HOURS_PER_DAY)
    present = ref_counts > 0
    cur_total = cur_counts[present[: cur_counts.size]].sum()
    if cur_total > 0:
        per_hour[present] = (cur_counts[present] / cur_total) / (ref_counts[present] / reference_hours.size)
    weights: np.ndarray = per_hour[reference_hours]
    return weights


def check_window(window: pd.DataFrame) -> None:
    """Refuse a window the tests cannot read, naming the column and the first bad row.

    Raises:
        DataValidationError: a required column is missing, or a step/amount/score is missing or out of range.
    """
    missing = [c for c in WINDOW_COLUMNS if c not in window.columns]
    if missing:
        raise DataValidationError(
            f"the window lacks {missing}; it needs the transaction fields and the served score and decision",
            column=missing[0],
        )
    for name, low, high in (("step", 0, None), ("amount", 0, None), ("score", 0, 1)):
        values = pd.to_numeric(window[name], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values) | (values < low)
        if high is not None:
            bad |= values > high
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataValidationError(f"invalid value {window[name].iloc[row]!r}", column=name, row=row)
    unknown = decision_codes(window["decision"]) < 0
    if unknown.any():
        row = int(np.flatnonzero(unknown)[0])
        raise DataValidationError(
            f"unknown decision {window['decision'].iloc[row]!r}; expected allow, review or block",
            column="decision",
            row=row,
        )


class _WindowTests:
    """Builds the pending tests of one window against one reference."""

    def __init__(self, window: pd.DataFrame, reference: Reference, config: DriftConfig) -> None:
        self.config = config
        self.reference = reference
        self.rng = np.random.default_rng(config.seed)
        self.pending: list[_Pending] = []
        self.window_types_all = type_codes(window["type"])
        self.window_decisions_all = decision_codes(window["decision"])
        self.steps = np.asarray(window["step"], dtype=np.int64)
        self.window_hours = _hours(self.steps)
        sample_hours = _hours(reference.sample["step"])
        scores_hours = _hours(reference.scores["step"])
        matched_hours = np.bincount(sample_hours, minlength=HOURS_PER_DAY) > 0
        matched_hours &= np.bincount(scores_hours, minlength=HOURS_PER_DAY) > 0
        self.matched = matched_hours[self.window_hours]
        self.unmatched = int((~self.matched).sum())
        self.window = window.loc[self.matched].reset_index(drop=True)
        self.window_types = self.window_types_all[self.matched]
        self.window_decisions = self.window_decisions_all[self.matched]
        hours = self.window_hours[self.matched]
        self.sample_weights = _hour_weights(sample_hours, hours)
        self.scores_weights = _hour_weights(scores_hours, hours)
        self.score_edges = stats.quantile_edges(reference.scores["score"].to_numpy(), config.bins)
        self.tails = {level: float(np.quantile(reference.scores["score"].to_numpy(), level)) for level in TAIL_LEVELS}

    # --- one test each -------------------------------------------------------------------------------------------
    def distribution(
        self,
        name: str,
        feature: str,
        kind: Kind,
        segment: str | None,
        reference_values: np.ndarray,
        reference_weights: np.ndarray,
        values: np.ndarray,
        floor: float,
        edges: np.ndarray | None = None,
    ) -> None:
        if reference_values.size == 0 or values.size == 0 or reference_weights.sum() <= 0:
            return
        bins = edges if edges is not None else stats.quantile_edges(reference_values, self.config.bins)
        outcome = stats.contingency_test(
            stats.bin_counts(reference_values, bins, reference_weights),
            stats.bin_counts(values, bins),
            reference_rows=stats.kish_size(reference_weights),
            floor=floor,
            rng=self.rng,
        )
        self.pending.append(_Pending(name, feature, kind, segment, outcome, floor, False, True))

    def categories(
        self,
        name: str,
        feature: str,
        kind: Kind,
        reference_codes: np.ndarray,
        reference_weights: np.ndarray | None,
        codes: np.ndarray,
        categories: int,
        floor: float,
    ) -> None:
        if codes.size == 0:
            return
        size = None if reference_weights is None else stats.kish_size(reference_weights)
        outcome = stats.contingency_test(
            stats.category_counts(reference_codes, categories, reference_weights),
            stats.category_counts(codes, categories),
            reference_rows=size,
            floor=floor,
            rng=self.rng,
        )
        self.pending.append(_Pending(name, feature, kind, None, outcome, floor, False, True))

    def rate(
        self,
        name: str,
        feature: str,
        kind: Kind,
        segment: str | None,
        reference_hits: np.ndarray,
        reference_weights: np.ndarray,
        hits: np.ndarray,
        *,
        two_sided: bool,
    ) -> None:
        if hits.size == 0 or reference_weights.sum() <= 0:
            return
        size = stats.kish_size(reference_weights)
        share = float(np.sum(reference_weights * reference_hits) / reference_weights.sum())
        outcome = stats.rate_test(
            share * size,
            size,
            int(np.count_nonzero(hits)),
            int(hits.size),
            alternative="two-sided" if two_sided else "greater",
            floor=self.config.rate_ratio_floor,
        )
        details = {"reference_rate": share, "rate": float(np.mean(hits))}
        self.pending.append(
            _Pending(name, feature, kind, segment, outcome, self.config.rate_ratio_floor, True, two_sided, details)
        )

    # --- the window's tests --------------------------------------------------------------------------------------
    def features(self) -> None:
        cfg, ref, win = self.config, self.reference.sample, self.window
        w = self.sample_weights
        for column in ("amount", *BALANCE_COLUMNS):
            if column in win.columns and column in ref.columns:
                values = pd.to_numeric(win[column], errors="coerce").to_numpy(dtype=np.float64)
                keep = np.isfinite(values)
                ref_values = ref[column].to_numpy(dtype=np.float64)
                self.distribution(column, column, "numeric", None, ref_values, w, values[keep], cfg.numeric_psi_floor)
        self.categories(
            "type",
            "type",
            "categorical",
            self.reference.sample_types,
            w,
            self.window_types,
            len(TRANSACTION_TYPES) + 1,
            cfg.type_psi_floor,
        )
        self.categories(
            "hour",
            "hour",
            "time",
            _hours(ref["step"]),
            None,
            self.window_hours,
            HOURS_PER_DAY,
            cfg.hour_psi_floor,
        )

    def score(self) -> None:
        cfg, ref = self.config, self.reference.scores
        w = self.scores_weights
        scores = self.window["score"].to_numpy(dtype=np.float64)
        ref_scores = ref["score"].to_numpy(dtype=np.float64)
        self.distribution("score", "score", "score", None, ref_scores, w, scores, cfg.score_psi_floor, self.score_edges)
        for level, cut in self.tails.items():
            label = f"score_above_p{level * 100:g}".replace(".", "_")
            self.rate(label, "score", "score", None, ref_scores > cut, w, scores > cut, two_sided=False)
        for code, decision in ((2, "block"), (1, "review")):
            self.rate(
                f"{decision}_rate",
                "decision",
                "rate",
                None,
                self.reference.scores_decisions == code,
                w,
                self.window_decisions == code,
                two_sided=True,
            )

    def labels(self) -> None:
        if "isFraud" not in self.window.columns or "isFraud" not in self.reference.scores.columns:
            return
        labels = pd.to_numeric(self.window["isFraud"], errors="coerce").to_numpy(dtype=np.float64)
        known = np.isfinite(labels)
        if not known.any():
            return
        ref = self.reference.scores
        ref_labels = ref["isFraud"].to_numpy(dtype=np.float64)
        # One-sided: more fraud is what to act on; the share of fraud on a few days swings widely between healthy
        # months (takeover chains come in bursts), so a lower rate is no alarm. Against the reference as it was,
        # not reweighted to the window's hours: fraud keeps its own hours (flat over the day), so more fraud moves
        # the window's hour mix towards the hours fraud dominates, and reweighting the reference to that mix would
        # raise its fraud rate with the window's (measured: a tenfold fraud rate then went unseen in 1 of 3
        # 100k-row windows; unweighted, in none, with no healthy window alarming).
        unweighted = np.ones(ref_labels.size)
        self.rate(
            "fraud_rate", "isFraud", "label", None, ref_labels > 0, unweighted, labels[known] > 0, two_sided=False
        )
        # A takeover moves the same money in several rows (the transfer, the mule's cash-out, further 10M chunks
        # of a rich victim), so fraud rows are not independent draws: each distinct amount counts once, in the
        # window and in the reference. The reference is not reweighted by hour here: the hour weights match the
        # whole window's hour mix, not its frauds', and would only shrink the few reference frauds' effective size.
        fraud_amounts = np.unique(self.window["amount"].to_numpy(dtype=np.float64)[known & (labels > 0)])
        ref_amounts = np.unique(ref["amount"].to_numpy(dtype=np.float64)[ref_labels > 0])
        if fraud_amounts.size and ref_amounts.size >= 2 * 10:
            edges = stats.quantile_edges(ref_amounts, bins=10, tail=())
            self.distribution(
                "fraud_amount",
                "amount",
                "label",
                "isFraud=1",
                ref_amounts,
                np.ones(ref_amounts.size),
                fraud_amounts,
                self.config.label_psi_floor,
                edges,
            )

    def segments(self) -> None:
        cfg, win = self.config, self.window
        sample, scores = self.reference.sample, self.reference.scores
        for code, kind in enumerate(TRANSACTION_TYPES):
            rows = self.window_types == code
            if int(rows.sum()) < cfg.min_segment_rows:
                continue
            segment = f"type={kind}"
            in_sample = self.reference.sample_types == code
            self.distribution(
                f"amount[{segment}]",
                "amount",
                "numeric",
                segment,
                sample["amount"].to_numpy(dtype=np.float64)[in_sample],
                self.sample_weights[in_sample],
                win["amount"].to_numpy(dtype=np.float64)[rows],
                cfg.numeric_psi_floor,
            )
            in_scores = self.reference.scores_types == code
            self.distribution(
                f"score[{segment}]",
                "score",
                "score",
                segment,
                scores["score"].to_numpy(dtype=np.float64)[in_scores],
                self.scores_weights[in_scores],
                win["score"].to_numpy(dtype=np.float64)[rows],
                cfg.score_psi_floor,
            )
        ref_scores = scores["score"].to_numpy(dtype=np.float64)
        ref_blocks = self.reference.scores_decisions == 2
        for column in ("arm", "model_version"):
            if column not in win.columns:
                continue
            labels = win[column].astype("string").fillna("(none)").to_numpy()
            groups = sorted(set(labels.tolist()))
            if len(groups) < 2:
                continue
            for group in groups:
                rows = labels == group
                if int(rows.sum()) < cfg.min_segment_rows:
                    continue
                segment = f"{column}={group}"
                self.distribution(
                    f"score[{segment}]",
                    "score",
                    "score",
                    segment,
                    ref_scores,
                    self.scores_weights,
                    win["score"].to_numpy(dtype=np.float64)[rows],
                    cfg.score_psi_floor,
                    self.score_edges,
                )
                self.rate(
                    f"block_rate[{segment}]",
                    "decision",
                    "rate",
                    segment,
                    ref_blocks,
                    self.scores_weights,
                    self.window_decisions[rows] == 2,
                    two_sided=True,
                )

    def day(self) -> ColumnResult:
        """Day of month: reported (share of rows on days the reference never saw), not tested."""
        ref_days = set((np.asarray(self.reference.sample["step"], dtype=np.int64) - 1) // HOURS_PER_DAY + 1)
        days = (self.steps - 1) // HOURS_PER_DAY + 1
        outside = float(np.mean(~np.isin(days, list(ref_days)))) if days.size else 0.0
        return ColumnResult(
            name="day",
            feature="day",
            kind="time",
            segment=None,
            method="days outside the reference's",
            statistic=outside,
            threshold=float("nan"),
            drift=False,
            p_value=float("nan"),
            p_beyond=float("nan"),
            p_adjusted=float("nan"),
            alpha=self.config.alpha,
            rows=int(days.size),
            reference_rows=float(len(self.reference.sample)),
            tested=False,
            note=(
                f"share of rows on days of month outside the reference's {min(ref_days)}-{max(ref_days)}; not "
                "tested: live traffic always comes after the reference period"
            ),
        )


def _judge(pending: Sequence[_Pending], alpha: float) -> list[ColumnResult]:
    """Verdicts of a window's tests: Holm over the judged p-values (real *and* beyond the floor) of the family."""
    adjusted = stats.holm([p.outcome.p_judged for p in pending])
    differs = stats.holm([p.outcome.p_value for p in pending]) <= alpha
    results = []
    for test, p_adj, real in zip(pending, adjusted, differs, strict=True):
        effect = test.outcome.effect
        if test.ratio:
            beyond = effect >= test.floor or (test.two_sided and effect <= 1.0 / test.floor)
        else:
            beyond = effect >= test.floor
        significant = bool(p_adj <= alpha)
        note = ""
        if real and not (significant and beyond):
            note = "a real difference, not shown to exceed the floor"
        results.append(
            ColumnResult(
                name=test.name,
                feature=test.feature,
                kind=test.kind,
                segment=test.segment,
                method=test.outcome.method,
                statistic=float(effect),
                threshold=float(test.floor),
                drift=bool(significant and beyond),
                p_value=float(test.outcome.p_value),
                p_beyond=float(test.outcome.p_beyond),
                p_adjusted=float(p_adj),
                alpha=alpha,
                rows=int(test.outcome.rows),
                reference_rows=float(test.outcome.reference_rows),
                note=note,
                details={"test_statistic": float(test.outcome.statistic), "df": test.outcome.df, **test.details},
            )
        )
    return results


def detect(
    window: pd.DataFrame,
    reference: Reference,
    config: DriftConfig | None = None,
    *,
    segments: bool = True,
    window_info: dict[str, Any] | None = None,
) -> DriftResult:
    """Test one window of scored traffic against a version's reference.

    Args:
        window: one row per scored transaction: `WINDOW_COLUMNS`, optionally the balances, ``isFraud``
            (matured labels; missing = not yet known), ``arm`` and ``model_version``.
        reference: the serving version's reference (`monitoring.reference.load`).
        config: thresholds; the calibrated defaults when None.
        segments: also test per type, arm and version.
        window_info: description of the window (time range, source) carried into the result.

    Raises:
        DataValidationError: the window is empty or a column is missing or invalid (named with its row).
    """
    cfg = config or DriftConfig()
    if window.empty:
        raise DataValidationError("the window holds no scored transactions; widen --since/--until")
    check_window(window)
    tests = _WindowTests(window, reference, cfg)
    tests.features()
    tests.score()
    tests.labels()
    if segments:
        tests.segments()
    columns = _judge(tests.pending, cfg.alpha)
    columns.append(tests.day())
    return DriftResult(
        drift=any(c.drift for c in columns),
        rows=len(window),
        reference_version=reference.version,
        alpha=cfg.alpha,
        tests=len(tests.pending),
        columns=columns,
        unmatched_hour_rows=tests.unmatched,
        window=dict(window_info or {}),
    )


def drifted_names(results: Iterable[DriftResult]) -> list[list[str]]:
    """The drifted column names of each result (for logs and benchmarks)."""
    return [[c.name for c in r.drifted] for r in results]
