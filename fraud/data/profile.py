"""The parity report: the statistics of a PaySim-schema dataset next to the published log's, with pass/fail.

`profile` streams any PaySim-schema data (a generated table, the real 6.36M-row Kaggle file read in batches)
once, without pandas, and keeps only counters, the amounts (for exact quantiles), the numeric part of the ids (for
exact distinct counts) and the fraudulent rows: four 8-byte numbers a row, about 200 MB for the full month.
`compare` turns a `Profile` into `Check`s against `Published`, with tolerances that account for the sample size:
a 100k-row file has sampling noise a 6.36M-row one does not, and the published figures are themselves one
realisation of a random month.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from scipy import stats

from fraud.data.paysim_model import TRANSFER_LIMIT
from fraud.data.published import Published, load_published
from fraud.errors import DataValidationError
from fraud.schema import COLUMNS, HOURS_PER_DAY, MAX_STEP, TRANSACTION_TYPES

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Unit = Literal["count", "share", "amount", "distance", "ratio", "per_million"]

K_SIGMA: Final = 4.0
"""Sampling allowance in standard errors. About thirty checks run on every profile; at 4 sigma the chance that
pure sampling noise fails any of them is well under 1%, while real departures (a wrong mix, a missing artefact)
are many sigma away at the sizes the generator is used at."""
ROWS_PER_VICTIM: Final = 2.1
"""Fraudulent rows per taken-over account (a transfer and its cash-out per chunk, 1.04 chunks per victim)."""
WITHDRAWALS: Final = ("CASH_OUT", "PAYMENT", "TRANSFER", "DEBIT")
BATCH_ROWS: Final = 1_000_000
_ORIGIN_ID = r"^C[0-9]{1,10}$"
_DEST_ID = r"^[CM][0-9]{1,10}$"
AMOUNT_BINS: Final = tuple(float(x) for x in np.concatenate([[0.0], np.logspace(0, 9, 91)]))
"""Edges of the amount histograms kept for plots: [0, 1) then 10 bins per decade up to 1e9."""
_FORMATS: Final = {"count": "{:,.0f}", "amount": "{:,.2f}", "per_million": "{:.3g}/M", "ratio": "{:.6f}"}
"""How each unit is shown in a table (shares are shown in percent)."""
_MERCHANT_OFFSET = 1 << 40
"""Destination ids are kept as numbers; merchants are shifted by this so M123 and C123 stay distinct."""


@dataclass(frozen=True)
class Quantiles:
    """Quantiles of a sample, with neighbours 5 points either side to estimate the density (for standard errors)."""

    count: int
    values: dict[str, float]

    @staticmethod
    def of(sample: FloatArray, levels: Sequence[float]) -> Quantiles:
        wanted = sorted({round(q + d, 4) for q in levels for d in (-0.05, 0.0, 0.05) if 0 < q + d < 1})
        if len(sample) == 0:
            return Quantiles(0, {})
        values = np.quantile(sample, wanted)
        return Quantiles(len(sample), {f"{q:.2f}": float(v) for q, v in zip(wanted, values, strict=True)})

    def at(self, q: float) -> float:
        return self.values.get(f"{q:.2f}", math.nan)

    def standard_error(self, q: float, reference_count: float = math.inf, effective: float | None = None) -> float:
        """Standard error of the difference between this sample's q-quantile and a reference sample's.

        The density at the quantile comes from the neighbouring quantiles; `effective` replaces the sample size
        when rows are not independent (a fraud transfer and its cash-out repeat one amount).
        """
        spread = self.at(min(q + 0.05, 0.95)) - self.at(max(q - 0.05, 0.05))
        size = effective if effective is not None else self.count
        if self.count == 0 or size <= 0 or not spread > 0:
            return math.inf
        width = min(q + 0.05, 0.95) - max(q - 0.05, 0.05)
        return math.sqrt(q * (1 - q) * (1 / size + 1 / reference_count)) * spread / width


@dataclass(frozen=True)
class Profile:
    """What `profile` measured. Counts are exact; quantiles are exact over the streamed values."""

    rows: int
    rows_by_type: dict[str, int]
    fraud_by_type: dict[str, int]
    unknown_type_rows: int
    flagged: int
    flagged_fraud_transfers: int
    flagged_balance_unchanged: int
    legit_amounts: dict[str, Quantiles]
    amounts: Quantiles
    fraud_amounts: Quantiles
    fraud_amount_mean: float
    fraud_amount_std: float
    fraud_amount_max: float
    fraud_at_cap: int
    fraud_effective_draws: float
    """Independent draws the fraudulent amounts amount to (see `_effective_fraud_draws`)."""
    fraud_amount_values: tuple[float, ...] = field(repr=False)
    """Every fraudulent amount, sorted (a few thousand values): fraud quantiles are checked distribution-free."""
    dest_zero_to_zero: dict[str, tuple[int, int]]
    """``fraud``/``legit`` → (TRANSFER/CASH_OUT rows, of which destination balance 0 before and after)."""
    merchant_rows: int
    merchant_not_payment: int
    payment_not_merchant: int
    merchant_nonzero_balance: int
    bad_origin_ids: int
    bad_destination_ids: int
    distinct_origins: int
    max_origin_repeats: int
    distinct_destinations: int
    fraud_transfers: int
    paired_transfers: int
    pairs_linked_by_id: int
    drained_transfers: int
    withdrawal_rows: int
    withdrawal_floored: int
    origin_zero_share: dict[str, float]
    amount_histograms: dict[str, list[int]]
    """Counts per `AMOUNT_BINS` bin of the legitimate amounts of each type, and of all fraud under ``"FRAUD"``."""
    steps: tuple[int, int]
    rows_by_step: dict[int, int] = field(repr=False)
    fraud_by_step: dict[int, int] = field(repr=False)

    @property
    def fraud(self) -> int:
        return sum(self.fraud_by_type.values())

    def hourly(self, *, fraud: bool = False) -> list[int]:
        by_step = self.fraud_by_step if fraud else self.rows_by_step
        counts = [0] * HOURS_PER_DAY
        for step, n in by_step.items():
            counts[step % HOURS_PER_DAY] += n
        return counts

    @property
    def fraud_only_steps(self) -> int:
        """Steps of the month (1..743) without a legitimate row: in a full-size month, those with fraud only."""
        legit = sum(1 for step, n in self.rows_by_step.items() if 1 <= step <= MAX_STEP and n > self._fraud_at(step))
        return MAX_STEP - legit

    @property
    def last_legit_step(self) -> int:
        """The last step with a legitimate row (0 when there is none)."""
        return max((step for step, n in self.rows_by_step.items() if n > self._fraud_at(step)), default=0)

    def _fraud_at(self, step: int) -> int:
        return self.fraud_by_step.get(step, 0)

    def daily(self, *, fraud: bool = False) -> dict[int, int]:
        by_step = self.fraud_by_step if fraud else self.rows_by_step
        counts: dict[int, int] = {}
        for step, n in by_step.items():
            day = (step - 1) // HOURS_PER_DAY + 1
            counts[day] = counts.get(day, 0) + n
        return dict(sorted(counts.items()))

    def to_dict(self) -> dict[str, Any]:
        """Everything as JSON-compatible values (for ``--json``)."""
        data = asdict(self)
        del data["fraud_amount_values"]
        data["fraud"] = self.fraud
        data["rows_by_step"] = {str(k): v for k, v in sorted(self.rows_by_step.items())}
        data["fraud_by_step"] = {str(k): v for k, v in sorted(self.fraud_by_step.items())}
        data["hourly_rows"], data["hourly_fraud"] = self.hourly(), self.hourly(fraud=True)
        data["daily_rows"] = {str(k): v for k, v in self.daily().items()}
        data["daily_fraud"] = {str(k): v for k, v in self.daily(fraud=True).items()}
        data["fraud_only_steps"], data["last_legit_step"] = self.fraud_only_steps, self.last_legit_step
        cleaned: dict[str, Any] = _finite(data)
        return cleaned


def _finite(value: Any) -> Any:
    """NaN and infinities as None, recursively: JSON has no such numbers."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


# --- streaming --------------------------------------------------------------------------------------------


class _Accumulator:
    def __init__(self) -> None:
        self.rows = 0
        self.type_counts = np.zeros(len(TRANSACTION_TYPES) + 1, dtype=np.int64)
        self.fraud_counts = np.zeros(len(TRANSACTION_TYPES) + 1, dtype=np.int64)
        self.origin_zero = np.zeros(len(TRANSACTION_TYPES) + 1, dtype=np.int64)
        self.counters: dict[str, int] = {}
        self.legit_amounts: list[list[FloatArray]] = [[] for _ in TRANSACTION_TYPES]
        self.amounts: list[FloatArray] = []
        self.origin_ids: list[IntArray] = []
        self.dest_ids: list[IntArray] = []
        self.fraud_parts: list[dict[str, npt.NDArray[Any]]] = []
        self.rows_by_step: dict[int, int] = {}
        self.fraud_by_step: dict[int, int] = {}
        self.histograms = np.zeros((len(TRANSACTION_TYPES) + 1, len(AMOUNT_BINS) - 1), dtype=np.int64)

    def add(self, name: str, value: int | np.integer[Any]) -> None:
        self.counters[name] = self.counters.get(name, 0) + int(value)

    def count_steps(self, target: dict[int, int], steps: IntArray) -> None:
        values, counts = np.unique(steps, return_counts=True)
        for step, n in zip(values.tolist(), counts.tolist(), strict=True):
            target[step] = target.get(step, 0) + n

    def batch(self, batch: pa.RecordBatch) -> None:
        missing = [c for c in COLUMNS if c not in batch.schema.names]
        if missing:
            raise DataValidationError(f"not a PaySim-schema batch: missing column(s) {', '.join(missing)}")
        cols = _Columns.of(batch)
        self.rows += batch.num_rows
        self._volumes(cols)
        self._artefacts(cols)
        self._ids(batch, cols)

    def _volumes(self, cols: _Columns) -> None:
        code, fraud, amount = cols.code, cols.fraud, cols.amount
        self.type_counts += np.bincount(code, minlength=len(self.type_counts))
        self.fraud_counts += np.bincount(code[fraud], minlength=len(self.fraud_counts))
        self.origin_zero += np.bincount(code[cols.old_org == 0], minlength=len(self.origin_zero))
        self.count_steps(self.rows_by_step, cols.step)
        self.count_steps(self.fraud_by_step, cols.step[fraud])
        self.amounts.append(amount)
        edges = np.asarray(AMOUNT_BINS)
        for i in range(len(TRANSACTION_TYPES)):
            legit = amount[(code == i) & ~fraud]
            self.legit_amounts[i].append(legit)
            self.histograms[i] += np.histogram(legit, edges)[0]
        self.histograms[-1] += np.histogram(amount[fraud], edges)[0]

    def _artefacts(self, cols: _Columns) -> None:
        code, fraud, flagged = cols.code, cols.fraud, cols.flagged
        transfer = code == TRANSACTION_TYPES.index("TRANSFER")
        self.add("flagged", flagged.sum())
        self.add("flagged_fraud_transfers", (flagged & fraud & transfer).sum())
        self.add("flagged_unchanged", (flagged & (cols.old_org == cols.new_org)).sum())
        tc = transfer | (code == TRANSACTION_TYPES.index("CASH_OUT"))
        zero_zero = (cols.old_dest == 0) & (cols.new_dest == 0)
        self.add("tc_fraud", (tc & fraud).sum())
        self.add("tc_fraud_zz", (tc & fraud & zero_zero).sum())
        self.add("tc_legit", (tc & ~fraud).sum())
        self.add("tc_legit_zz", (tc & ~fraud & zero_zero).sum())
        # PaySim's withdraw floors at zero: new = max(old - amount, 0). The slack covers cents and the
        # three-significant-digit values of the pandas-rewritten real sample.
        withdrawal = np.isin(code, [TRANSACTION_TYPES.index(t) for t in WITHDRAWALS]) & ~fraud & ~flagged
        expected = np.maximum(cols.old_org - cols.amount, 0)
        slack = np.maximum(0.011, 5e-3 * np.maximum(cols.old_org, cols.amount))
        self.add("withdrawals", withdrawal.sum())
        self.add("withdrawals_floored", (withdrawal & (np.abs(cols.new_org - expected) <= slack)).sum())

    def _ids(self, batch: pa.RecordBatch, cols: _Columns) -> None:
        orig, dest = batch.column("nameOrig"), batch.column("nameDest")
        orig_ok = pc.match_substring_regex(orig, _ORIGIN_ID)
        dest_ok = pc.match_substring_regex(dest, _DEST_ID)
        orig_valid = np.asarray(orig_ok.to_numpy(zero_copy_only=False), dtype=bool)
        dest_valid = np.asarray(dest_ok.to_numpy(zero_copy_only=False), dtype=bool)
        self.add("bad_origin_ids", (~orig_valid).sum())
        self.add("bad_destination_ids", (~dest_valid).sum())
        merchant = np.asarray(pc.starts_with(dest, "M").to_numpy(zero_copy_only=False), dtype=bool)
        payment = cols.code == TRANSACTION_TYPES.index("PAYMENT")
        self.add("merchant_rows", merchant.sum())
        self.add("merchant_not_payment", (merchant & ~payment).sum())
        self.add("payment_not_merchant", (payment & ~merchant).sum())
        self.add("merchant_nonzero_balance", (merchant & ((cols.old_dest != 0) | (cols.new_dest != 0))).sum())
        orig_num = _id_numbers(orig, orig_ok)
        dest_num = _id_numbers(dest, dest_ok) + np.where(merchant, _MERCHANT_OFFSET, 0)
        self.origin_ids.append(orig_num[orig_valid])
        self.dest_ids.append(dest_num[dest_valid])
        fraud = cols.fraud
        self.fraud_parts.append(
            {
                "step": cols.step[fraud],
                "type": cols.code[fraud],
                "amount": cols.amount[fraud],
                "old": cols.old_org[fraud],
                "new": cols.new_org[fraud],
                "flagged": cols.flagged[fraud],
                "orig": orig_num[fraud],
                "dest": dest_num[fraud],
            }
        )


@dataclass(frozen=True)
class _Columns:
    """One batch's columns as numpy arrays (type as an index into TRANSACTION_TYPES; unknown types last)."""

    step: IntArray
    code: IntArray
    amount: FloatArray
    old_org: FloatArray
    new_org: FloatArray
    old_dest: FloatArray
    new_dest: FloatArray
    fraud: npt.NDArray[np.bool_]
    flagged: npt.NDArray[np.bool_]

    @staticmethod
    def of(batch: pa.RecordBatch) -> _Columns:
        def num(name: str) -> FloatArray:
            return np.asarray(batch.column(name).to_numpy(zero_copy_only=False), dtype=np.float64)

        codes = pc.fill_null(
            pc.index_in(batch.column("type"), value_set=pa.array(TRANSACTION_TYPES)), len(TRANSACTION_TYPES)
        )
        return _Columns(
            step=np.asarray(batch.column("step").to_numpy(zero_copy_only=False), dtype=np.int64),
            code=np.asarray(codes.to_numpy(zero_copy_only=False), dtype=np.int64),
            amount=num("amount"),
            old_org=num("oldbalanceOrg"),
            new_org=num("newbalanceOrig"),
            old_dest=num("oldbalanceDest"),
            new_dest=num("newbalanceDest"),
            fraud=num("isFraud") == 1,
            flagged=num("isFlaggedFraud") == 1,
        )


def _id_numbers(names: pa.Array | pa.ChunkedArray, valid: pa.Array | pa.ChunkedArray) -> IntArray:
    digits = pc.if_else(valid, pc.utf8_slice_codeunits(names, 1), "0")
    return np.asarray(pc.cast(digits, pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)


def _batches(data: pa.Table | Iterable[pa.RecordBatch]) -> Iterable[pa.RecordBatch]:
    if isinstance(data, pa.Table):
        batches: list[pa.RecordBatch] = data.to_batches(max_chunksize=BATCH_ROWS)
        return batches
    return data


def _distinct(parts: list[IntArray]) -> tuple[int, int]:
    values = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    if len(values) == 0:
        return 0, 0
    _, counts = np.unique(values, return_counts=True)
    return len(counts), int(counts.max())


def _fraud_pairs(fraud: dict[str, npt.NDArray[Any]]) -> tuple[int, int, int, int]:
    """(fraudulent TRANSFERs, those followed by a same-amount fraudulent CASH_OUT in their step, pairs whose
    CASH_OUT is made by the TRANSFER's destination id, TRANSFERs that drain the origin as the simulator does)."""
    transfer = fraud["type"] == TRANSACTION_TYPES.index("TRANSFER")
    cash_out = fraud["type"] == TRANSACTION_TYPES.index("CASH_OUT")
    out_steps, out_amounts, out_origins = (fraud[k][cash_out].tolist() for k in ("step", "amount", "orig"))
    outs = set(zip(out_steps, out_amounts, strict=True))
    outs_by_origin = set(zip(out_steps, out_amounts, out_origins, strict=True))
    paired = linked = 0
    for step, amount_, dest in zip(*(fraud[k][transfer].tolist() for k in ("step", "amount", "dest")), strict=True):
        if (step, amount_) in outs:
            paired += 1
            linked += (step, amount_, dest) in outs_by_origin
    amount, old, new, flagged = (fraud[k][transfer] for k in ("amount", "old", "new", "flagged"))
    slack = np.maximum(0.011, 5e-3 * old)
    drains = (np.abs(amount - old) <= slack) & (new == 0)
    capped = (amount == TRANSFER_LIMIT) & (np.abs(new - (old - TRANSFER_LIMIT)) <= slack)
    blocked = flagged & (new == old)
    return int(transfer.sum()), paired, linked, int((drains | capped | blocked).sum())


def _effective_fraud_draws(fraud: dict[str, npt.NDArray[Any]]) -> float:
    """How many independent amounts the fraudulent rows amount to, for their sampling error.

    A victim's transfers form a chain inside one step (each starts from the balance the previous one left), and
    each transfer's cash-out repeats its amount, so a victim is one draw spread over 2 x chunks rows. With rows
    per victim m_i, the effective sample is (sum m_i)^2 / sum m_i^2; rows outside any chain count one each.
    """
    transfer = fraud["type"] == TRANSACTION_TYPES.index("TRANSFER")
    steps, olds, news = (fraud[k][transfer].tolist() for k in ("step", "old", "new"))
    following = {(s, o): i for i, (s, o) in enumerate(zip(steps, olds, strict=True))}
    continues = {(s, n) for s, n in zip(steps, news, strict=True) if n > 0}
    sizes: list[int] = []
    for start, (step, old) in enumerate(zip(steps, olds, strict=True)):
        if (step, old) in continues:
            continue  # not the first transfer of its victim
        length, current = 1, start
        while news[current] > 0 and (step, news[current]) in following and following[(step, news[current])] != current:
            current = following[(step, news[current])]
            length += 1
            if length > len(steps):
                break
        sizes.append(2 * length)
    rows = len(fraud["type"])
    singles = max(rows - sum(sizes), 0)
    squares = sum(m * m for m in sizes) + singles
    return rows * rows / squares if squares else 0.0


def profile(data: pa.Table | Iterable[pa.RecordBatch]) -> Profile:
    """Measure a PaySim-schema dataset (see the module docstring), streaming its record batches once.

    Raises:
        DataValidationError: a batch lacks one of the PaySim columns.
    """
    acc = _Accumulator()
    for batch in _batches(data):
        acc.batch(batch)
    fraud = {k: np.concatenate([p[k] for p in acc.fraud_parts]) for k in acc.fraud_parts[0]} if acc.fraud_parts else {}
    fraud_amount = fraud["amount"] if fraud else np.zeros(0)
    transfers, paired, linked, drained = _fraud_pairs(fraud) if fraud else (0, 0, 0, 0)
    distinct_origins, max_repeats = _distinct(acc.origin_ids)
    distinct_destinations, _ = _distinct(acc.dest_ids)
    amounts = np.concatenate(acc.amounts) if acc.amounts else np.zeros(0)
    c = acc.counters
    types = {t: int(acc.type_counts[i]) for i, t in enumerate(TRANSACTION_TYPES)}
    steps = sorted(acc.rows_by_step)
    return Profile(
        rows=acc.rows,
        rows_by_type=types,
        fraud_by_type={t: int(acc.fraud_counts[i]) for i, t in enumerate(TRANSACTION_TYPES)},
        unknown_type_rows=int(acc.type_counts[-1]),
        flagged=c.get("flagged", 0),
        flagged_fraud_transfers=c.get("flagged_fraud_transfers", 0),
        flagged_balance_unchanged=c.get("flagged_unchanged", 0),
        legit_amounts={
            t: Quantiles.of(np.concatenate(acc.legit_amounts[i]) if acc.legit_amounts[i] else np.zeros(0), [0.5])
            for i, t in enumerate(TRANSACTION_TYPES)
        },
        amounts=Quantiles.of(amounts, [0.25, 0.5, 0.75]),
        fraud_amounts=Quantiles.of(fraud_amount, [0.5, 0.95]),
        fraud_amount_mean=float(fraud_amount.mean()) if len(fraud_amount) else math.nan,
        fraud_amount_std=float(fraud_amount.std()) if len(fraud_amount) else math.nan,
        fraud_amount_max=float(fraud_amount.max()) if len(fraud_amount) else math.nan,
        fraud_at_cap=int((fraud_amount == TRANSFER_LIMIT).sum()),
        fraud_effective_draws=_effective_fraud_draws(fraud) if fraud else 0.0,
        fraud_amount_values=tuple(np.sort(fraud_amount).tolist()),
        dest_zero_to_zero={
            "fraud": (c.get("tc_fraud", 0), c.get("tc_fraud_zz", 0)),
            "legit": (c.get("tc_legit", 0), c.get("tc_legit_zz", 0)),
        },
        merchant_rows=c.get("merchant_rows", 0),
        merchant_not_payment=c.get("merchant_not_payment", 0),
        payment_not_merchant=c.get("payment_not_merchant", 0),
        merchant_nonzero_balance=c.get("merchant_nonzero_balance", 0),
        bad_origin_ids=c.get("bad_origin_ids", 0),
        bad_destination_ids=c.get("bad_destination_ids", 0),
        distinct_origins=distinct_origins,
        max_origin_repeats=max_repeats,
        distinct_destinations=distinct_destinations,
        fraud_transfers=transfers,
        paired_transfers=paired,
        pairs_linked_by_id=linked,
        drained_transfers=drained,
        withdrawal_rows=c.get("withdrawals", 0),
        withdrawal_floored=c.get("withdrawals_floored", 0),
        origin_zero_share={t: float(acc.origin_zero[i] / max(types[t], 1)) for i, t in enumerate(TRANSACTION_TYPES)},
        amount_histograms={name: acc.histograms[i].tolist() for i, name in enumerate([*TRANSACTION_TYPES, "FRAUD"])},
        steps=(steps[0], steps[-1]) if steps else (0, 0),
        rows_by_step=dict(sorted(acc.rows_by_step.items())),
        fraud_by_step=dict(sorted(acc.fraud_by_step.items())),
    )


# --- comparison ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One statistic next to its expected value."""

    name: str
    value: float
    published: float
    """The expected value: the published figure, or what the simulator's rules imply (see `basis`)."""
    tolerance: float
    passed: bool
    unit: Unit
    basis: str = "published"
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = _finite(asdict(self))
        return result

    def _format(self, number: float) -> str:
        if not math.isfinite(number):
            return "-" if math.isnan(number) else "any"
        if self.unit == "share":
            return f"{number * 100:.4g}%"
        return _FORMATS.get(self.unit, "{:.4g}").format(number)

    def format_value(self) -> str:
        """The measured value, formatted for a table by its unit."""
        return self._format(self.value)

    def format_published(self) -> str:
        """The expected value, formatted for a table (marked when it comes from the simulator's rules)."""
        text = self._format(self.published)
        return text if self.basis == "published" else f"{text} (rule)"

    def format_tolerance(self) -> str:
        """The tolerance, formatted for a table."""
        return "exact" if self.tolerance == 0 else f"±{self._format(self.tolerance)}"


def checks_to_json(checks: Sequence[Check], profile: Profile | None = None, *, indent: int | None = 2) -> str:
    """The checks (and optionally the profile) as JSON text."""
    document: dict[str, Any] = {"passed": all(c.passed for c in checks), "checks": [c.to_dict() for c in checks]}
    if profile is not None:
        document["profile"] = profile.to_dict()
    return json.dumps(document, indent=indent, default=str)


def _share_check(
    name: str, hits: int, total: int, expected: float, reference_total: float, relative: float, basis: str = "published"
) -> Check:
    """A proportion: tolerance = max(relative * expected, K_SIGMA binomial standard errors of the difference)."""
    value = hits / total if total else math.nan
    se = math.sqrt(expected * (1 - expected) * (1 / max(total, 1) + 1 / reference_total))
    tolerance = max(relative * expected, K_SIGMA * se)
    return Check(name, value, expected, tolerance, bool(total) and abs(value - expected) <= tolerance, "share", basis)


def _tvd_check(name: str, observed: dict[Any, int], expected: dict[Any, int], effective: float, floor: float) -> Check:
    """Total variation distance between two histograms (0 = same shape, 1 = disjoint).

    Tolerance: `floor` for what the model may legitimately miss, plus the distance pure multinomial noise gives
    (mean + K_SIGMA sd of 0.5 * sum |N(0, s_i)|, s_i^2 = p_i (1 - p_i) (1/n + 1/N)); `effective` discounts
    rows that arrive together (a fraud transfer and its cash-out share one step).
    """
    keys = sorted(set(observed) | set(expected))
    n, m = sum(observed.values()), sum(expected.values())
    if n == 0:
        return Check(name, math.nan, 0.0, floor, False, "distance", note="no rows")
    p = np.array([observed.get(k, 0) / n for k in keys])
    q = np.array([expected.get(k, 0) / m for k in keys])
    distance = 0.5 * float(np.abs(p - q).sum())
    sigma = np.sqrt(q * (1 - q) * (1 / max(effective, 1) + 1 / m))
    mean = 0.5 * math.sqrt(2 / math.pi) * float(sigma.sum())
    sd = 0.5 * math.sqrt((1 - 2 / math.pi) * float((sigma**2).sum()))
    tolerance = floor + mean + K_SIGMA * sd
    return Check(name, distance, 0.0, tolerance, distance <= tolerance, "distance")


def _quantile_check(
    name: str,
    sample: Quantiles,
    q: float,
    expected: float,
    reference_count: float,
    relative: float,
    effective: float | None = None,
) -> Check:
    """A quantile: tolerance = max(relative * expected, K_SIGMA standard errors from the sample's own density)."""
    value = sample.at(q)
    tolerance = max(relative * expected, K_SIGMA * sample.standard_error(q, reference_count, effective))
    passed = sample.count > 0 and abs(value - expected) <= tolerance
    return Check(name, value, expected, tolerance, passed, "amount")


def _tail_quantile_check(
    name: str, values: FloatArray, q: float, expected: float, effective: float, reference: float, relative: float
) -> Check:
    """A quantile of a small, clustered, heavy-tailed sample (the fraud amounts), checked distribution-free.

    Under the published distribution, the number of the sample's `effective` independent draws below the
    published q-quantile is binomial(effective, q) (widened for the published month's own noise). The check
    passes when that count is within the central 1 - 2 * Phi(-K_SIGMA) of the binomial, i.e. when the published
    value lies between the sample's matching quantiles; the tolerance shown is that distance. Exact for any shape,
    including the mass at the 10M cap right above the p95; `relative` of the expected value always passes.
    """
    if len(values) == 0:
        return Check(name, math.nan, expected, math.inf, False, "amount", note="no fraud")
    value = float(np.quantile(values, q))
    draws = max(1, round(1 / (1 / effective + 1 / reference)))
    tail = float(stats.norm.sf(K_SIGMA))
    low, high = stats.binom.ppf(tail, draws, q), stats.binom.isf(tail, draws, q)
    if expected >= value:
        reach = math.inf if high >= draws else float(np.quantile(values, high / draws)) - value
    else:
        reach = math.inf if low <= 0 else value - float(np.quantile(values, low / draws))
    tolerance = max(relative * expected, reach)
    return Check(name, value, expected, tolerance, abs(value - expected) <= tolerance, "amount")


def _zero_check(name: str, value: int, note: str = "", basis: str = "published") -> Check:
    return Check(name, float(value), 0.0, 0.0, value == 0, "count", basis, note)


def _close(name: str, value: float, expected: float, tolerance: float, unit: Unit, note: str = "") -> Check:
    passed = math.isfinite(value) and abs(value - expected) <= tolerance
    return Check(name, value, expected, tolerance, passed, unit, note=note)


def _mix_checks(profile: Profile, pub: Published) -> list[Check]:
    n, fraud = profile.rows, profile.fraud
    # Type mix: 2% relative covers a mix that is right but not exactly the published draw; beyond that, the
    # binomial noise of both months.
    checks = [_share_check(f"type share {t}", profile.rows_by_type[t], n, pub.type_shares[t], pub.rows, 0.02)
              for t in TRANSACTION_TYPES]  # fmt: skip
    checks.append(_zero_check("rows of an unknown type", profile.unknown_type_rows))
    # Fraud: the rate is the generator's main knob, 5% relative; within TRANSFER/CASH_OUT the counts are small
    # (4,097 and 4,116), so the binomial term dominates at most sizes.
    checks.append(_share_check("fraud rate", fraud, n, pub.fraud_rate, pub.rows, 0.05))
    for t in ("TRANSFER", "CASH_OUT"):
        hits, total = profile.fraud_by_type[t], profile.rows_by_type[t]
        checks.append(_share_check(f"fraud rate in {t}", hits, total, pub.fraud_rate_in(t), pub.rows_by_type[t], 0.05))
    other = sum(v for t, v in profile.fraud_by_type.items() if t not in ("TRANSFER", "CASH_OUT"))
    checks.append(_zero_check("fraud outside TRANSFER/CASH_OUT", other))
    return checks


def _amount_checks(profile: Profile, pub: Published) -> list[Check]:
    # Legitimate medians per type and overall quartiles: 3% relative (the amount model is fitted to them; 3% is
    # well inside the differences between types and the effect of any amount-shift scenario), plus sampling
    # error from the sample's own density.
    checks = [
        _quantile_check(f"legit median amount {t}", profile.legit_amounts[t], 0.5,
                        pub.legit_median_amount_by_type[t], pub.legit_by_type[t], 0.03)
        for t in TRANSACTION_TYPES
    ]  # fmt: skip
    for key, q in (("p25", 0.25), ("p50", 0.5), ("p75", 0.75)):
        checks.append(_quantile_check(f"amount {key}", profile.amounts, q, pub.amount_quantiles[key], pub.rows, 0.03))
    # Fraud amounts: few rows and a heavy tail, so 5% relative plus sampling error. A transfer and its cash-out
    # repeat one amount and a victim's chunks share one balance: the error counts victims, not rows (for the
    # published month, about 2.1 rows per victim).
    fraud_eff, pub_eff = max(profile.fraud_effective_draws, 1.0), pub.fraud / ROWS_PER_VICTIM
    fa = pub.fraud_amount
    values = np.asarray(profile.fraud_amount_values)
    checks.append(_tail_quantile_check("fraud amount median", values, 0.5, fa.median, fraud_eff, pub_eff, 0.05))
    checks.append(_tail_quantile_check("fraud amount p95", values, 0.95, fa.p95, fraud_eff, pub_eff, 0.05))
    mean_se = profile.fraud_amount_std * math.sqrt(1 / fraud_eff + 1 / pub_eff) if profile.fraud else math.inf
    mean_tol = max(0.05 * fa.mean, K_SIGMA * mean_se)
    checks.append(_close("fraud amount mean", profile.fraud_amount_mean, fa.mean, mean_tol, "amount"))
    # The cap is a rule: nothing above 10M, and exactly 10M once the month has enough fraud to reach it: 3.6% of
    # fraudulent rows are capped chunks, two rows each, so with 6 chunks expected a month without one has a
    # Poisson probability below 0.3%.
    top = profile.fraud_amount_max
    needed = profile.fraud / 2 * 0.036 >= 6
    cap_ok = bool(profile.fraud) and top <= fa.max and (top == fa.max or not needed)
    checks.append(Check("fraud amount max", top, fa.max, 0.0, cap_ok, "amount", note="capped at the transfer limit"))
    return checks


def _rule_checks(profile: Profile, pub: Published) -> list[Check]:
    n = profile.rows
    # isFlaggedFraud: a count (16 in the month), shown per million rows. Flagged rows come in clusters (a victim
    # with more than 50M trips the rule twice), so the variance of the difference of the two months' counts is
    # taken as twice the Poisson one; tolerance K_SIGMA sd plus two rows for discreteness. Every flagged row must
    # be a blocked fraudulent TRANSFER.
    expected = pub.flagged_rows * n / pub.rows
    count_tol = K_SIGMA * math.sqrt(2 * expected * (1 + n / pub.rows)) + 2
    flagged = Check("flagged rows per million", profile.flagged / n * 1e6, pub.flagged_per_million,
                    count_tol / n * 1e6, abs(profile.flagged - expected) <= count_tol, "per_million")  # fmt: skip
    rule = "simulator rule"
    checks = [
        flagged,
        _zero_check(
            "flagged rows not fraudulent TRANSFERs", profile.flagged - profile.flagged_fraud_transfers, basis=rule
        ),
        _zero_check(
            "flagged rows moving the origin balance", profile.flagged - profile.flagged_balance_unchanged, basis=rule
        ),
        # Merchants and ids: rules, no tolerance.
        _zero_check("merchant destinations of non-PAYMENT rows", profile.merchant_not_payment),
        _zero_check("PAYMENT rows to non-merchants", profile.payment_not_merchant),
        _zero_check("merchant rows with a non-zero balance", profile.merchant_nonzero_balance),
        _zero_check("malformed ids (not C/M + digits)", profile.bad_origin_ids + profile.bad_destination_ids),
    ]
    # 0 -> 0 destinations: 5% relative on the fraud share (about half the fraud), 20% on the tiny legitimate share
    # (0.062%: a second-order artefact of PaySim's bookkeeping that is modelled, not simulated), plus noise.
    (f_rows, f_zz), (l_rows, l_zz) = profile.dest_zero_to_zero["fraud"], profile.dest_zero_to_zero["legit"]
    tc_fraud = pub.fraud_by_type["TRANSFER"] + pub.fraud_by_type["CASH_OUT"]
    tc_legit = pub.rows_by_type["TRANSFER"] + pub.rows_by_type["CASH_OUT"] - tc_fraud
    name = "dest 0->0 share, {} TRANSFER/CASH_OUT"
    checks.append(_share_check(name.format("fraud"), f_zz, f_rows, pub.dest_zero_to_zero_fraud, tc_fraud, 0.05))
    checks.append(_share_check(name.format("legit"), l_zz, l_rows, pub.dest_zero_to_zero_legit, tc_legit, 0.2))
    # Expected values from the simulator's rules (not published): every withdrawal floors at zero; a fraudulent
    # TRANSFER empties the origin (or moves one 10M chunk, or is blocked), except a drained victim's own later
    # transfers (about 10 of 4,097); every transfer to a mule is followed by the mule's same-amount CASH_OUT
    # except blocked ones (16) and those later transfers. Tolerances: 0.2% for withdrawals (the real head has
    # 0.01-0.14% whose balance does not move at all), 2-3% for the victims' later rows, plus binomial noise.
    pairs = pub.fraud / 2
    transfers = profile.fraud_transfers
    checks += [
        _share_check("withdrawals floored at zero", profile.withdrawal_floored, profile.withdrawal_rows, 1.0,
                     math.inf, 0.002, rule),
        _share_check("fraud TRANSFERs draining the origin", profile.drained_transfers, transfers, 0.995, pairs, 0.02,
                     rule),
        _share_check("fraud TRANSFERs followed by their CASH_OUT", profile.paired_transfers, transfers, 0.99, pairs,
                     0.03, rule),
        _zero_check("fraud pairs linked by id (mule = cash-out origin)", profile.pairs_linked_by_id, basis=rule),
    ]  # fmt: skip
    return checks


def _id_checks(profile: Profile, pub: Published) -> list[Check]:
    n = profile.rows
    repeats = profile.max_origin_repeats
    checks = [Check("origin id max repeats", float(repeats), float(pub.max_origin_repeats), 0.0,
                    0 < repeats <= pub.max_origin_repeats, "count", note="at most")]  # fmt: skip
    # Distinct-origin ratio: birthday collisions are Poisson, so the noise is sqrt(collisions)/n; 0.0002 absolute
    # for the rounding of the generator's id pool. Destinations: 3% relative (the popularity model is calibrated
    # on the month's total).
    expected = pub.distinct_origin_ratio
    tolerance = max(0.0002, K_SIGMA * math.sqrt((1 - expected) * n * (1 + n / pub.rows)) / n)
    checks.append(_close("distinct origin ratio", profile.distinct_origins / n, expected, tolerance, "ratio"))
    expected = pub.distinct_destination_ratio
    checks.append(
        _close("distinct destination ratio", profile.distinct_destinations / n, expected, 0.03 * expected, "ratio")
    )
    return checks


FULL_SIZE_SHARE: Final = 0.9
"""A profile of at least this share of the published rows is a full-size month for the activity checks."""
FRAUD_ONLY_STEPS_RELATIVE: Final = 0.1
LAST_LEGIT_STEP_SLACK: Final = 2


def _activity_checks(profile: Profile, pub: Published) -> list[Check]:
    """When the month has legitimate activity: steps with fraud only, and the last legitimate step.

    In the published log 320 of the 743 steps hold fraud only and nothing legitimate happens after step 718. Both
    are figures of the full-size month: a sample of fewer rows leaves thinly used hours without a legitimate row,
    so it has more such steps, and its last legitimate step can only come earlier. At full size (at least
    `FULL_SIZE_SHARE` of the published rows) both checks are two-sided: 10% relative on the count of fraud-only
    steps (which hours carry legitimate rows is modelled, not replayed, and varies from month to month) and two
    steps on the last legitimate step (its last active hour may be thin). Below that size they are one-sided
    bounds that still hold: at least 90% of the published fraud-only steps, a last legitimate step no later than
    the published one (plus the slack).
    """
    full_size = profile.rows >= FULL_SIZE_SHARE * pub.rows
    scope = "full-size month" if full_size else "lower bound below full size"
    count, expected = profile.fraud_only_steps, pub.fraud_only_steps
    tolerance = FRAUD_ONLY_STEPS_RELATIVE * expected
    passed = abs(count - expected) <= tolerance if full_size else count >= expected - tolerance
    only = Check("fraud-only steps", float(count), float(expected), tolerance, passed, "count", note=scope)
    last, expected_last = profile.last_legit_step, pub.last_legit_step
    scope = "full-size month" if full_size else "upper bound below full size"
    passed = (
        abs(last - expected_last) <= LAST_LEGIT_STEP_SLACK
        if full_size
        else last <= expected_last + LAST_LEGIT_STEP_SLACK
    )
    last_check = Check("last legitimate step", float(last), float(expected_last), float(LAST_LEGIT_STEP_SLACK),
                       passed and last > 0, "count", note=scope)  # fmt: skip
    return [only, last_check]


def _shape_checks(profile: Profile, pub: Published) -> list[Check]:
    # Distances between distributions (see _tvd_check): 0.01 of model allowance for the rows, 0.02 for fraud
    # (8,213 rows in the month, spread almost evenly); a transfer and its cash-out share a step.
    n, pairs = profile.rows, profile.fraud / 2
    hours, hours_fraud = dict(enumerate(pub.hourly_rows)), dict(enumerate(pub.hourly_fraud))
    days = {d + 1: v for d, v in enumerate(pub.daily_rows)}
    days_fraud = {d + 1: v for d, v in enumerate(pub.daily_fraud)}
    return [
        _tvd_check("hourly shape of rows (TVD)", dict(enumerate(profile.hourly())), hours, n, 0.01),
        _tvd_check("daily shape of rows (TVD)", profile.daily(), days, n, 0.01),
        _tvd_check(
            "hourly shape of fraud (TVD)", dict(enumerate(profile.hourly(fraud=True))), hours_fraud, pairs, 0.02
        ),
        _tvd_check("daily shape of fraud (TVD)", profile.daily(fraud=True), days_fraud, pairs, 0.02),
    ]


LAST_WEEK_RELATIVE: Final = 0.1
"""Model allowance of the last-week checks, relative to the published share."""


def _last_week_checks(profile: Profile, pub: Published) -> list[Check]:
    """The real log's last week (steps 576-743, the test block of the published strict results): its share of the
    month's rows and its fraud rate. The month's quiet end is what a forward split tests on, and these two figures
    set how hard that test is; neither was used to build the generator (a check of the timeline, not a fit)."""
    week = pub.last_week
    rows = sum(n for step, n in profile.rows_by_step.items() if step >= week.first_step)
    fraud = sum(n for step, n in profile.fraud_by_step.items() if step >= week.first_step)
    name = f"steps {week.first_step}-{MAX_STEP}"
    return [
        _share_check(f"{name}: share of rows", rows, profile.rows, week.rows / pub.rows, pub.rows, LAST_WEEK_RELATIVE),
        _share_check(f"{name}: fraud rate", fraud, rows, week.fraud_rate, week.rows, LAST_WEEK_RELATIVE),
    ]


def compare(profile: Profile, published: Published | None = None) -> list[Check]:
    """Every statistic of the profile next to its expected value, with a scale-aware tolerance.

    Raises:
        DataValidationError: the profile has no rows.
    """
    if profile.rows == 0:
        raise DataValidationError("cannot compare an empty dataset with the published statistics")
    pub = published or load_published()
    rows = Check("rows", float(profile.rows), float(pub.rows), math.inf, True, "count", note="any size")
    sections = (
        _mix_checks,
        _amount_checks,
        _rule_checks,
        _id_checks,
        _shape_checks,
        _activity_checks,
        _last_week_checks,
    )
    return [rows, *(check for section in sections for check in section(profile, pub))]
