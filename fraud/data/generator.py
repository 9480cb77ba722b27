"""A fast, deterministic generator of PaySim-like months, faithful to the published log.

The original simulator is an agent-based Java program (about 20k rows/s for the version that produced the Kaggle
log). This generator reproduces the log's statistics and its bookkeeping artefacts instead of simulating agents:
every column is drawn with vectorised numpy for all rows at once, so the full 6.36M-row month takes seconds.

What it reproduces, and from what (details in `paysim_model`, `timeline`, `fraudsters`, `rows`, `destinations`,
`ids`):

* when: per-step volumes whose hour-of-day and day-of-month marginals are the published tables, one matrix for
  legitimate rows (strong daily cycle, front-loaded month, nothing after step 718) on a sparse support drawn per
  month, so that about 320 hours hold fraud only as in the published log, and one for fraud (almost flat);
* what: the published type mix and per-type legitimate medians and overall quartiles, with heavy right tails;
* fraud: the simulator's account takeover (drain the victim in chunks of at most 10M to fresh mules, each mule
  cashes out the same amount in the same step) and the victims' own later transactions; in the young month's
  first hours many victims still hold their small, whole initial balance;
* ``isFlaggedFraud``: the simulator's rule, not the data card's "more than 200,000" (``checkBalanceDropping`` in
  EdgarLopezPhD/PaySim ``Client.java``): from an account's fourth transfer on, a transfer that would leave the
  balance more than 2.5 x 10M below the highest balance seen during its first three transfers is flagged and
  blocked (no money moves). Only fraudsters draining more than 30M trip it: a handful of rows a month;
* balances: origin balances as in the real head, withdrawals floored at zero, fraud draining the origin exactly,
  destination balances that run per account within a step and the end-of-step snapshot in ``newbalanceDest``;
* ids: fresh origin ids with the published collision rate, repeating customer destinations, merchants only as
  PAYMENT destinations, mules and their CASH_OUTs unlinked by id.

Determinism: every aspect draws from its own random stream derived from the seed (no dependence on batch sizes or
threads), so the same seed gives the same table, and a scenario that keeps the row plan (an amount shift) changes
nothing but what it targets: steps, types, ids and fraud stay identical to the baseline's.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from fraud.data import paysim_model as pm
from fraud.data.destinations import pick_accounts, pool_balances, pool_size
from fraud.data.ids import id_numbers, id_strings, origin_pool_size, small_strings
from fraud.data.published import Published, load_published
from fraud.data.rows import (
    FRESH,
    MERCHANT,
    MULE,
    POOL,
    FraudRows,
    Rows,
    aftermath_rows,
    fraud_chunks,
    fraud_rows,
    legit_rows,
    merge,
)
from fraud.data.scenarios import Scenario
from fraud.errors import ConfigError
from fraud.schema import ARROW_SCHEMA, COLUMNS, TRANSACTION_TYPES

IntArray = npt.NDArray[np.int64]
Progress = Callable[[int], None]

SUFFIXES: Final = (".parquet", ".csv", ".csv.gz")
PARQUET_ROW_GROUP: Final = 1_000_000
CSV_BATCH: Final = 250_000

_STREAMS: Final = (
    "steps", "types", "amounts", "origin_balances", "fraud", "fraud_steps", "aftermath", "order", "origin_ids",
    "dest_pool", "dest_balances", "merchant_ids", "mule_ids", "fraud_dests", "support", "step_levels",
)  # fmt: skip
"""One independent random stream per aspect; add new names at the end so existing streams keep their draws."""


def _streams(seed: int) -> dict[str, np.random.Generator]:
    return {
        name: np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(i,))) for i, name in enumerate(_STREAMS)
    }


class _Budget:
    """Reports progress to the caller in row increments that add up to exactly `total`."""

    def __init__(self, total: int, callback: Progress | None) -> None:
        self.total = total
        self.callback = callback
        self.done = 0

    def to(self, fraction: float) -> None:
        target = min(self.total, round(self.total * fraction))
        if self.callback is not None and target > self.done:
            self.callback(target - self.done)
        self.done = max(self.done, target)


def _plan_fraud(rows: int, scenario: Scenario, published: Published) -> tuple[int, dict[str, int]]:
    """Rows of transfer/cash-out pairs, and of victims' own later transactions, for a month of `rows` rows."""
    target = min(rows, round(rows * published.fraud_rate * scenario.fraud_rate_multiplier))
    aftermath = {name: round(target * share) for name, share in pm.VICTIM_AFTERMATH_SHARE.items()}
    return max(target - sum(aftermath.values()), 0), aftermath


def _rows(rows: int, scenario: Scenario, published: Published, streams: dict[str, np.random.Generator]) -> Rows:
    """Every row of the month in log order, without ids and pool destination balances yet."""
    support_seed = int(streams["support"].integers(0, 2**62))  # which hours of the month carry legitimate rows
    pair_rows, aftermath = _plan_fraud(rows, scenario, published)
    pairs = fraud_rows(*fraud_chunks(streams, pair_rows, scenario, support_seed), streams)
    first_unit = int(pairs.unit.max()) + 1 if len(pairs.unit) else 0
    later = aftermath_rows(aftermath, scenario, streams["aftermath"], first_unit)
    fraud = FraudRows(
        Rows.concat([pairs.rows, later.rows]),
        np.concatenate([pairs.unit, later.unit]),
        np.concatenate([pairs.sub, later.sub]),
    )
    legit = legit_rows(
        rows - len(fraud.rows), scenario, published, streams, support_seed
    )  # fraud never exceeds its target
    return merge(legit, fraud, streams["order"])


_NUMPY_TYPES: Final = {pa.int8(): np.int8, pa.int32(): np.int32, pa.float64(): np.float64}


def _arrow(values: npt.NDArray[np.generic], kind: pa.DataType) -> pa.Array:
    """A numpy array as an Arrow array without a copy (`pa.array` would import pandas to inspect it: ~1.5 s)."""
    data = np.ascontiguousarray(values, dtype=_NUMPY_TYPES[kind])
    return pa.Array.from_buffers(kind, len(data), [None, pa.py_buffer(data)])


def _money(cents: IntArray) -> pa.Array:
    return _arrow(cents / 100.0, pa.float64())


def _build(rows: int, seed: int, scenario: Scenario, report: Callable[[float], None]) -> pa.Table:
    """The month as an Arrow table; `report` receives the fraction of the work done."""
    published = load_published()
    streams = _streams(seed)
    month = _rows(rows, scenario, published, streams)
    n = len(month)
    report(0.3)

    # Origins: a fresh id per row, from a pool sized for the published repeat rate.
    id_pool = origin_pool_size(n, published.rows, published.distinct_origins)
    origin = streams["origin_ids"]
    name_orig = id_numbers(origin.integers(0, id_pool, n), int(origin.integers(0, 2**40)))

    # Destinations: merchants and mules are one-off ids; customers repeat, with running balances.
    kind = month.dest_kind
    merchants = np.flatnonzero(kind == MERCHANT)
    one_off = np.flatnonzero((kind == MULE) | (kind == FRESH))
    pool_rows = np.flatnonzero(kind == POOL)
    dest_num = np.empty(n, dtype=np.int64)
    merchant = streams["merchant_ids"]
    dest_num[merchants] = id_numbers(merchant.integers(0, id_pool, len(merchants)), int(merchant.integers(0, 2**40)))
    mule = streams["mule_ids"]
    dest_num[one_off] = id_numbers(mule.permutation(len(one_off)), int(mule.integers(0, 2**40)))
    merchants_distinct = len(merchants) - len(merchants) ** 2 / (2 * id_pool)
    target = published.distinct_destination_ratio * n - merchants_distinct - len(one_off)
    accounts = pool_size(len(pool_rows), target)
    dest_pool = streams["dest_pool"]
    account = pick_accounts(dest_pool, len(pool_rows), accounts)
    dest_num[pool_rows] = id_numbers(account, int(dest_pool.integers(0, 2**40)))
    old_dest = np.zeros(n, dtype=np.int64)
    new_dest = np.zeros(n, dtype=np.int64)
    new_dest[one_off] = month.dest_new[one_off]
    if len(pool_rows):
        balances = pool_balances(month, pool_rows, account, accounts, streams["dest_balances"])
        old_dest[pool_rows], new_dest[pool_rows] = balances
    report(0.7)

    columns = {
        "step": _arrow(month.step, pa.int32()),
        "type": small_strings(TRANSACTION_TYPES).take(_arrow(month.type, pa.int8())),
        "amount": _money(month.amount),
        "nameOrig": id_strings("C", name_orig),
        "oldbalanceOrg": _money(month.old_org),
        "newbalanceOrig": _money(month.new_org),
        "nameDest": id_strings(small_strings(["M", "C"]).take(_arrow(kind != MERCHANT, pa.int8())), dest_num),
        "oldbalanceDest": _money(old_dest),
        "newbalanceDest": _money(new_dest),
        "isFraud": _arrow(month.fraud, pa.int8()),
        "isFlaggedFraud": _arrow(month.flagged, pa.int8()),
    }
    table = pa.Table.from_arrays([columns[c] for c in COLUMNS], schema=ARROW_SCHEMA)
    report(1.0)
    return table


def _check_args(rows: int, seed: int) -> None:
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
        raise ConfigError(f"rows must be a whole number >= 1, got {rows!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be a whole number >= 0, got {seed!r}")


def generate(
    rows: int,
    seed: int = 0,
    scenario: Scenario | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> pa.Table:
    """Generate `rows` PaySim transactions of one month, sorted by step.

    Args:
        rows: number of rows (the published month has 6,362,620); fraud, id pools and everything else scale.
        seed: the same seed (and scenario) always gives the same table.
        scenario: how the month departs from the published one; None is the baseline.
        on_progress: called with the number of rows completed since the last call; the calls add up to `rows`.

    Returns:
        A table with exactly `fraud.schema.ARROW_SCHEMA`.

    Raises:
        ConfigError: rows < 1 or a negative seed.
    """
    _check_args(rows, seed)
    return _build(rows, seed, scenario or Scenario(), _Budget(rows, on_progress).to)


def _format(path: Path) -> str:
    name = path.name.lower()
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return suffix
    raise ConfigError(f"cannot write '{path.name}': the file name must end in one of {', '.join(SUFFIXES)}")


def _write_table(table: pa.Table, path: Path, suffix: str, advance: Callable[[float], None]) -> None:
    if suffix == ".parquet":
        # Dictionary encoding only where it pays (type, step); ids and amounts are nearly all distinct.
        with pq.ParquetWriter(path, ARROW_SCHEMA, compression="zstd", use_dictionary=["type", "step"]) as writer:
            for offset in range(0, table.num_rows, PARQUET_ROW_GROUP):
                writer.write_table(table.slice(offset, PARQUET_ROW_GROUP), row_group_size=PARQUET_ROW_GROUP)
                advance(min(offset + PARQUET_ROW_GROUP, table.num_rows) / table.num_rows)
        return
    options = pacsv.WriteOptions(include_header=True, quoting_style="none", quoting_header="none")
    sink = pa.CompressedOutputStream(str(path), "gzip") if suffix == ".csv.gz" else pa.OSFile(str(path), "wb")
    with sink, pacsv.CSVWriter(sink, ARROW_SCHEMA, write_options=options) as writer:
        done = 0
        for batch in table.to_batches(max_chunksize=CSV_BATCH):
            writer.write_batch(batch)
            done += batch.num_rows
            advance(done / table.num_rows)


def write(
    path: Path,
    rows: int,
    seed: int = 0,
    scenario: Scenario | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> Path:
    """Generate a month and write it to `path` (.parquet, .csv or .csv.gz), atomically.

    Parquet is written with pyarrow (zstd, row groups of 1M rows); CSV has the published header exactly and reads
    back with pandas or pyarrow. The file is written under a temporary name in the same directory and renamed
    at the end, so an interrupted run never leaves a half-written file under `path`.

    Returns:
        The path written.

    Raises:
        ConfigError: bad rows/seed, or an extension other than the supported ones.
    """
    path = Path(path)
    suffix = _format(path)
    _check_args(rows, seed)
    if not path.parent.is_dir():
        raise ConfigError(
            f"cannot write '{path}': directory '{path.parent}' does not exist; create it (mkdir -p {path.parent})"
        )
    budget = _Budget(rows, on_progress)
    generating = 0.6  # share of the progress for generating; the rest is writing
    table = _build(rows, seed, scenario or Scenario(), lambda done: budget.to(generating * done))
    # A hidden name in the same directory (same file system, so the rename is atomic), created with the
    # user's umask like any file they write.
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        _write_table(table, temp, suffix, lambda done: budget.to(generating + (1 - generating) * done))
        temp.replace(path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    budget.to(1.0)
    return path
