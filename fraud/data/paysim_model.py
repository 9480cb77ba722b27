"""The statistical model of the PaySim log: calibrated constants and the samplers that use them.

Two sources calibrate it, and each constant says which:

* the published full-file statistics (``published_stats.json``): type mix, fraud counts, medians, quartiles,
  fraud amounts, the hourly and daily tables, flagged rows, the destination 0 → 0 shares;
* the genuine head of the real file (``paysim_head_steps1to9.csv``, 44,598 rows) for what the published figures
  do not pin down: the shape of each type's amount distribution, the origin balances (share of zeros, integer
  balances, log-quantiles), the destination accounts' initial balances and the bookkeeping artefacts.

The fitted numbers come from ``benchmarks/calibrate_generator.py``, which fits them with the samplers below (so
the fit and the generator cannot disagree about what a parameter means) and prints them for pasting here.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy import special

from fraud.schema import TRANSACTION_TYPES

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

TYPE_CODES: Final = {t: i for i, t in enumerate(TRANSACTION_TYPES)}
CASH_IN, CASH_OUT, DEBIT, PAYMENT, TRANSFER = (TYPE_CODES[t] for t in TRANSACTION_TYPES)

# --- the simulator's own rules (PaySim source, EdgarLopezPhD/PaySim, src/paysim/Client.java + Fraudster.java) ---
TRANSFER_LIMIT: Final = 10_000_000.0
"""``transferLimit``: a fraudster moves a victim's balance in chunks of at most this much."""
FLAG_MIN_TRANSFERS: Final = 3
"""``checkBalanceDropping``: the first three transfers of an account only record its highest balance..."""
FLAG_DROP_FACTOR: Final = 2.5
"""...afterwards a transfer is flagged (and blocked) when it would drop the balance more than 2.5 x the limit
below that highest balance."""

# --- legitimate amounts -----------------------------------------------------------------------------------
# amount = scale * X * exp(sigma * Z), X ~ N(a, 1) truncated to X > 0, Z ~ N(0, 1); for a `tail_share` of rows
# sigma is the wider `tail_sigma`.
# PaySim draws each amount from a normal distribution truncated at zero whose mean and spread come from the real
# operator's aggregates per (type, day, hour): within the hours of the real head that shape fits well (it gave the
# starting `a`), and the lognormal factor stands for the variation of the aggregates across the month. The full
# file's standard deviation (604k for a mean of 180k) needs a few very large amounts in every type: the tail
# mixture. `a`, `sigma` and the tail share are fitted to the published overall quartiles and to the full file's
# mean amount per type and standard deviation; `scale` puts each type's median on the published legitimate median
# (benchmarks/calibrate_generator.py).


@dataclass(frozen=True)
class AmountShape:
    a: float
    sigma: float
    scale: float
    tail_share: float = 0.0
    """Share of rows whose lognormal factor has the wider `tail_sigma`: the rare very large amounts."""
    tail_sigma: float = 1.5


AMOUNT_SHAPES: Final[dict[str, AmountShape]] = {
    "CASH_IN": AmountShape(a=0.3544, sigma=0.0200, scale=174309.29, tail_share=0.01920),
    "CASH_OUT": AmountShape(a=0.5077, sigma=0.1710, scale=164830.80, tail_share=0.01920),
    "DEBIT": AmountShape(a=0.6430, sigma=0.8399, scale=3485.51, tail_share=0.01920),
    "PAYMENT": AmountShape(a=-0.1343, sigma=0.3807, scale=15650.33, tail_share=0.01920),
    "TRANSFER": AmountShape(a=-3.0000, sigma=0.6593, scale=2507988.54, tail_share=0.01920),
}

# --- legitimate amounts: the level of each step on quiet days ----------------------------------------------
# PaySim draws every amount of a step from the real operator's mean and spread for that (type, day, hour)
# (``paramFiles/AggregateTransaction.csv`` in EdgarLopezPhD/PaySim), so all rows of a type in one step share a
# level. On the busy days the levels are steady and follow the clock (the genuine head's nine hours: CASH_IN step
# means 160k-191k, CASH_OUT 96k-191k, TRANSFER 270k-911k, the low ones at night); the month-wide per-row spread
# (`AmountShape.sigma`, fitted to the full file's figures, which the busy days dominate) stands for that. On the
# quiet days (3-5 and 18-31: the forward split's whole test block) the operator's thin, irregular hours scatter
# far more (the same file's hours of days 18-30: TRANSFER means from 93k to 4.6M, PAYMENT 1.0k-63k, CASH_IN
# 73k-233k). Without that scatter every test step has the training steps' amount distribution, so legitimate
# TRANSFERs and CASH_OUTs are easier to tell from fraud (victims' balances, which do not follow the operator's
# levels) than in the real log.


@dataclass(frozen=True)
class StepLevels:
    """Standard deviations of log(step mean amount) of one type between steps of busy days and of quiet days."""

    busy: float
    quiet: float

    @property
    def extra(self) -> float:
        """The spread a quiet day's step level adds to the month-wide one, which already holds the busy days'."""
        return float(np.sqrt(max(self.quiet**2 - self.busy**2, 0.0)))


STEP_LEVELS: Final[dict[str, StepLevels]] = {
    "CASH_IN": StepLevels(busy=0.012, quiet=0.228),
    "CASH_OUT": StepLevels(busy=0.061, quiet=0.242),
    "DEBIT": StepLevels(busy=0.293, quiet=0.460),
    "PAYMENT": StepLevels(busy=0.227, quiet=0.582),
    "TRANSFER": StepLevels(busy=0.257, quiet=0.866),
}
"""Busy: the volume-weighted spread of the log of each step's mean legitimate amount over the genuine head's
steps 1-9 (all on day 1), less the sampling noise of the means (cv^2 / n). Quiet: the volume-weighted spread of
log(tavg) over the operator's hours of days 18-30 with at least 100 transactions (50 for DEBIT) in PaySim's
``AggregateTransaction.csv``: 90 CASH_IN, 96 CASH_OUT, 60 DEBIT, 123 PAYMENT and 92 TRANSFER hours."""

LEGIT_CHUNKED_SHARE: Final = 0.5
"""Share of legitimate TRANSFERs above the limit that the simulator splits into 10M chunks. Of its two transfer
paths one chunks (``Client.handleAction``) and one does not (``handleTransferRepetition``), so the log has both
legitimate rows of exactly 10,000,000 and larger ones (its largest amount, 92.4M, is a TRANSFER). Only the first
chunk of a split transfer is kept here, so the row count stays as planned."""

# --- fraud: the victims' balances -------------------------------------------------------------------------
# A fraud drains a victim's whole balance B in chunks of at most TRANSFER_LIMIT, so the fraud amounts are the
# chunks of B. For a victim whose balance has moved since PaySim created it (all but about 1% of the month's
# victims), B is a two-piece lognormal (median e^mu, spread s_low below it and s_high above) truncated at
# `truncate`, plus a small share of very rich victims (uniform in `rich_range`): the only ones whose fifth and
# later chunks trip the simulator's balance-dropping rule. mu, s_high, the truncation and the rich share are
# fitted to the published fraud median, mean, p95 and the 16 flagged rows of the month (with the month's few
# untouched victims mixed in, as the generator does); s_low is not pinned by any published figure and is a
# moderate choice. Victims robbed before their first own transaction hold their untouched initial balance instead
# (`UNTOUCHED_VICTIM_BALANCES`): many in the first hours of a month, almost none later
# (``timeline.untouched_victim_share``).


@dataclass(frozen=True)
class VictimBalances:
    mu: float
    s_low: float
    s_high: float
    truncate: float
    rich_share: float
    rich_range: tuple[float, float]
    integer_share: float
    """Share of these victims whose balance is a whole number. Initial balances are mostly whole (87% of the
    head's new destination accounts), but a balance that has moved holds cents like the amounts that moved it
    (about 1% of legitimate amounts are whole). The head's 16 whole fraudulent TRANSFER amounts of 46 are the
    victims that still hold their untouched initial balance (`UNTOUCHED_VICTIM_BALANCES`), which
    `timeline.untouched_victim_share` predicts at 0.39 for its steps."""


VICTIMS: Final = VictimBalances(
    mu=12.970780,
    s_low=1.2,
    s_high=1.745491,
    truncate=23_258_180.0,
    rich_share=0.0028967,
    rich_range=(40_000_000.0, 60_000_000.0),
    integer_share=0.01,
)

# Victims keep transacting after the takeover and the simulator labels those rows fraudulent too; they explain
# why the month has 4,116 fraudulent CASH_OUTs for 4,097 TRANSFERs (head: 3 such CASH_OUTs, 1 TRANSFER in 94).
VICTIM_AFTERMATH_SHARE: Final = {"CASH_OUT": 29 / 8213, "TRANSFER": 10 / 8213}
"""Share of all fraudulent rows that are a drained victim's own later CASH_OUT / TRANSFER."""
VICTIM_AFTERMATH_DRAINED: Final = 0.7
"""Share of those later rows that start from the drained zero balance (head: 3 of 4); the rest got money since."""

# --- origin balances (real head, legitimate rows) -----------------------------------------------------------
BALANCE_QUANTILES: Final = (
    0.0, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5,
    0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.925, 0.95, 0.975, 0.99, 1.0,
)  # fmt: skip


@dataclass(frozen=True)
class BalanceTable:
    """An empirical balance distribution: a share of exact zeros, then log10-quantiles of the rest."""

    zero_share: float
    integer_share: float
    log10_quantiles: tuple[float, ...]


ORIGIN_BALANCES: Final[dict[str, BalanceTable]] = {
    "CASH_IN": BalanceTable(0.0088, 0.247, (
        0.845, 2.283, 3.007, 3.82, 4.302, 4.61, 4.968, 5.397, 5.82, 6.081, 6.241, 6.354, 6.447,
        6.534, 6.598, 6.659, 6.726, 6.789, 6.838, 6.885, 6.936, 6.976, 7.031, 7.12, 7.289, 7.455,
    )),
    "CASH_OUT": BalanceTable(0.5618, 0.673, (
        0.0, 2.037, 2.202, 2.516, 3.051, 3.629, 3.907, 4.038, 4.137, 4.279, 4.327, 4.413, 4.498,
        4.616, 4.71, 4.809, 4.957, 5.055, 5.224, 5.382, 5.586, 5.705, 5.895, 6.144, 6.378, 7.14,
    )),
    "DEBIT": BalanceTable(0.058, 0.842, (
        0.845, 2.009, 2.22, 2.573, 3.016, 3.559, 3.939, 4.014, 4.059, 4.173, 4.291, 4.32, 4.393,
        4.485, 4.552, 4.66, 4.745, 4.856, 5.002, 5.127, 5.303, 5.375, 5.512, 5.736, 5.946, 6.513,
    )),
    "PAYMENT": BalanceTable(0.252, 0.673, (
        0.0, 2.025, 2.248, 2.585, 3.167, 3.702, 3.95, 4.041, 4.132, 4.268, 4.326, 4.411, 4.497,
        4.612, 4.708, 4.805, 4.934, 5.032, 5.184, 5.348, 5.549, 5.707, 5.893, 6.144, 6.392, 7.049,
    )),
    "TRANSFER": BalanceTable(0.4698, 0.74, (
        0.845, 1.968, 2.173, 2.488, 3.042, 3.662, 3.913, 4.035, 4.1, 4.227, 4.319, 4.389, 4.49,
        4.603, 4.703, 4.785, 4.903, 5.017, 5.15, 5.315, 5.547, 5.696, 5.87, 6.145, 6.445, 7.213,
    )),
}  # fmt: skip
CASH_IN_UNCHANGED_SHARE: Final = 0.0146
"""CASH_INs whose origin balance does not move (head: 1.46%), a simulator artefact kept as it is."""

# --- destination accounts (real head) ----------------------------------------------------------------------
DEST_INITIAL_BALANCES: Final = BalanceTable(0.15, 0.87, (
    0.845, 2.009, 2.256, 2.669, 3.392, 3.792, 4.021, 4.106, 4.286, 4.33, 4.459, 4.523, 4.639,
    4.714, 4.797, 4.906, 5.006, 5.087, 5.195, 5.316, 5.459, 5.543, 5.684, 5.876, 6.548, 7.26,
))  # fmt: skip
"""Balance of a customer destination account when it first appears: log-quantiles and integer share from the
head; the share of empty accounts (head: 0.20 in the first nine hours) tuned to 0.15 for a whole month, with the
reset balances below, so the legitimate TRANSFER/CASH_OUT 0 → 0 share and the zero shares match."""
DEST_POPULARITY_SIGMA: Final = 1.6
"""Lognormal spread of how often each destination account is chosen: a few accounts receive hundreds of
transfers in the month (head: one received 73 in nine hours), most only a few."""
DEST_SNAPSHOT_OK: Final = (0.66, 0.9)
"""The simulator writes ``newbalanceDest`` from the live account at the end of the step, so it also reflects
the account's own, unlogged activity. Probability that it is the consistent end-of-step balance: 0.66 for an
account that appears once in the step, times 0.9 per further appearance (head: 0.66, 0.58, 0.53, 0.48...)."""
DEST_RESET_BALANCES: Final = BalanceTable(
    0.08,
    0.0,
    tuple(
        float(v)
        for v in np.log10(8.0e5) + 1.25 / np.log(10) * special.ndtri(np.clip(BALANCE_QUANTILES, 1e-4, 1 - 1e-4))
    ),
)
"""An account's balance after its own activity in a step: empty in 8% of cases, otherwise lognormal around 800k
(sigma 1.25). Tuned on generated months so that customer destination balances match the full file's (its
``describe()``, printed in public notebooks: mean 1.10M before / 1.22M after over all rows, i.e. about 1.66M /
1.85M over customer destinations, all-row medians 133k / 215k) and CASH_IN destinations end the step empty as
often as in the head (21%)."""
DEST_EMPTY_ZERO_TO_ZERO: Final = 0.002
"""Probability that an account which starts the step empty also ends it empty although it received money:
sets the legitimate TRANSFER/CASH_OUT 0 → 0 share (published 0.00062)."""
UNTOUCHED_VICTIM_BALANCES: Final = BalanceTable(
    0.0, DEST_INITIAL_BALANCES.integer_share, DEST_INITIAL_BALANCES.log10_quantiles
)
"""Balance of a victim taken over before its first own transaction: PaySim's initial balance of a client of its
list, i.e. a new customer destination's balance (`DEST_INITIAL_BALANCES`), positive (a fraudster finds nothing
to take from an empty account). Only the first hours of a month have many such victims (see
``timeline.untouched_victim_share``); they are why the genuine head's frauds are small (median 29.7k over steps
1-9, against 441k for the month) and often whole numbers."""
MULE_REUSED_SHARE: Final = 0.028
"""A mule's balance is 0 again when the step is written (it cashed out), except when it was picked as the
destination of some later payment in the same step: sets the published fraud 0 → 0 share (0.4956)."""
FRAUD_CASHOUT_FRESH_DEST: Final = 0.35
"""A mule's CASH_OUT goes to any client, often one without money yet (head: 18 of 48 start at 0)."""
FRESH_DEST_ZERO_SHARE: Final = 0.06


def truncated_normal(rng: np.random.Generator, a: float, size: int) -> FloatArray:
    """Samples of N(a, 1) conditioned on being > 0, by inversion (stable for any `a`)."""
    v = 1.0 - rng.random(size)  # in (0, 1]
    result: FloatArray = a - special.ndtri(v * special.ndtr(a))
    return result


def legit_amounts(
    rng: np.random.Generator, tx_type: str, size: int, factor: float = 1.0, level: FloatArray | None = None
) -> FloatArray:
    """Legitimate amounts of one type, in currency units (not yet rounded).

    `level` is each row's log step level (`step_levels`): zero on busy days, whose spread the month-wide shape
    already holds; None for rows outside the month's step plan (a mule's unrelated payment, a victim's later
    transaction).
    """
    shape = AMOUNT_SHAPES[tx_type]
    x = truncated_normal(rng, shape.a, size)
    sigma = np.where(rng.random(size) < shape.tail_share, shape.tail_sigma, shape.sigma)
    log_factor = sigma * rng.standard_normal(size)
    if level is not None:
        log_factor += level
    result: FloatArray = shape.scale * factor * x * np.exp(log_factor)
    return result


def step_levels(rng: np.random.Generator, tx_type: str, quiet: BoolArray, volume: FloatArray) -> FloatArray:
    """Log level of one type's legitimate amounts at each step of a month (see `STEP_LEVELS`).

    Zero on busy days; on quiet days drawn with the extra spread and centred on the quiet days' legitimate volume
    (`volume`, rows per step), so that the levels scatter the quiet steps around the month's typical amount
    without moving it (`AmountShape.scale` puts it on the published median).
    """
    levels: FloatArray = np.where(quiet, rng.standard_normal(len(quiet)) * STEP_LEVELS[tx_type].extra, 0.0)
    weight = np.where(quiet, volume, 0.0)
    total = weight.sum()
    if total > 0:
        levels[quiet] -= float((levels * weight).sum() / total)
    return levels


def victim_balances(rng: np.random.Generator, size: int, model: VictimBalances = VICTIMS) -> FloatArray:
    """Balances of the accounts fraudsters take over (before rounding)."""
    top = special.ndtr((np.log(model.truncate) - model.mu) / model.s_high)
    z = special.ndtri(rng.random(size) * top)
    balances: FloatArray = np.exp(model.mu + np.where(z < 0, model.s_low, model.s_high) * z)
    rich = rng.random(size) < model.rich_share
    low, high = model.rich_range
    balances[rich] = rng.uniform(low, high, int(rich.sum()))
    return balances


_GRID: Final = 4096


@cache
def _balance_grid(table: BalanceTable) -> FloatArray:
    """The table's quantile function on a fine grid (interpolated in log space once, not per draw)."""
    grid: FloatArray = 10.0 ** np.interp(np.linspace(0, 1, _GRID + 1), BALANCE_QUANTILES, table.log10_quantiles)
    return grid


def table_balances(rng: np.random.Generator, table: BalanceTable, size: int) -> IntArray:
    """Balances in cents drawn from an empirical table (zeros, integers and cents as in the real head)."""
    grid = _balance_grid(table)
    position = rng.random(size) * _GRID
    cell = position.astype(np.int64)
    value = grid[cell] + (position - cell) * (grid[np.minimum(cell + 1, _GRID)] - grid[cell])
    whole = rng.random(size) < table.integer_share
    cents = np.where(whole, np.round(value) * 100, np.round(value * 100)).astype(np.int64)
    cents[rng.random(size) < table.zero_share] = 0
    return cents


def to_cents(values: FloatArray) -> IntArray:
    """Round currency amounts to whole cents, never below one cent."""
    return np.maximum(np.round(values * 100.0), 1).astype(np.int64)
