"""The rows of a generated month before ids and destination balances: legitimate, fraudulent, and merged in log order.

Money is kept in integer cents until the table is built, so balances add up exactly and amounts have two decimals.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import numpy.typing as npt

from fraud.data import paysim_model as pm
from fraud.data.fraudsters import LIMIT_CENTS, Chunks, smurfing, takeover
from fraud.data.published import Published
from fraud.data.scenarios import Scenario
from fraud.data.timeline import month_steps, quiet_steps, step_weights, untouched_victim_share
from fraud.schema import TRANSACTION_TYPES

IntArray = npt.NDArray[np.int64]
Int8Array = npt.NDArray[np.int8]

MERCHANT, POOL, MULE, FRESH = 0, 1, 2, 3
"""Kinds of destination: a merchant (PAYMENT), a repeating customer account, a fraud mule, a one-off customer."""


@dataclass
class Rows:
    """Rows under construction, one numpy array per attribute."""

    step: IntArray
    type: Int8Array
    amount: IntArray
    old_org: IntArray
    new_org: IntArray
    dest_kind: Int8Array
    dest_new: IntArray
    """Destination balance when the step is written, for mules and one-off accounts (pool accounts come later)."""
    fraud: Int8Array
    flagged: Int8Array

    def __len__(self) -> int:
        return len(self.step)

    @staticmethod
    def concat(parts: list[Rows]) -> Rows:
        return Rows(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Rows)})

    def take(self, index: IntArray) -> Rows:
        return Rows(**{f.name: getattr(self, f.name)[index] for f in fields(Rows)})


@dataclass
class FraudRows:
    """Fraudulent rows with their place in the log: rows sharing `unit` stay together, in `sub` order."""

    rows: Rows
    unit: IntArray
    sub: IntArray


def _full(value: int, size: int) -> Int8Array:
    return np.full(size, value, dtype=np.int8)


def legit_rows(
    count: int, scenario: Scenario, published: Published, streams: dict[str, np.random.Generator], support_seed: int
) -> Rows:
    """`count` legitimate rows, sorted by step (rows of one step are exchangeable, so already in random order).

    `support_seed` chooses which hours of the month carry legitimate rows (`timeline.legit_support`).
    """
    per_step = streams["steps"].multinomial(count, step_weights(scenario.start_step, support_seed=support_seed))
    step = np.repeat(month_steps(scenario.start_step), per_step)
    mix = scenario.legit_type_shares({t: n / published.legit for t, n in published.legit_by_type.items()})
    drawn = streams["types"].choice(len(TRANSACTION_TYPES), size=count, p=[mix[t] for t in TRANSACTION_TYPES])
    types: Int8Array = drawn.astype(np.int8)
    amount = np.zeros(count, dtype=np.int64)
    old = np.zeros(count, dtype=np.int64)
    amounts, balances, levels = streams["amounts"], streams["origin_balances"], streams["step_levels"]
    quiet = quiet_steps(scenario.start_step)
    offset = step - scenario.start_step
    for code, name in enumerate(TRANSACTION_TYPES):
        where = np.flatnonzero(types == code)
        level = pm.step_levels(levels, name, quiet, per_step.astype(np.float64))[offset[where]]
        amount[where] = pm.to_cents(
            pm.legit_amounts(amounts, name, len(where), scenario.amount_multiplier(name), level)
        )
        old[where] = pm.table_balances(balances, pm.ORIGIN_BALANCES[name], len(where))
    big = np.flatnonzero((types == pm.TRANSFER) & (amount > LIMIT_CENTS))
    amount[big[amounts.random(len(big)) < pm.LEGIT_CHUNKED_SHARE]] = LIMIT_CENTS
    new = np.maximum(old - amount, 0)  # PaySim's withdraw floors at zero
    cash_in = np.flatnonzero(types == pm.CASH_IN)
    unchanged = balances.random(len(cash_in)) < pm.CASH_IN_UNCHANGED_SHARE
    new[cash_in] = np.where(unchanged, old[cash_in], old[cash_in] + amount[cash_in])
    return Rows(
        step=step,
        type=types,
        amount=amount,
        old_org=old,
        new_org=new,
        dest_kind=np.where(types == pm.PAYMENT, MERCHANT, POOL).astype(np.int8),
        dest_new=np.zeros(count, dtype=np.int64),
        fraud=_full(0, count),
        flagged=_full(0, count),
    )


def fraud_chunks(
    streams: dict[str, np.random.Generator], target_rows: int, scenario: Scenario, support_seed: int
) -> tuple[Chunks, IntArray]:
    """Victims drawn until their transfer + cash-out pairs fill `target_rows` as closely as possible.

    Each victim gets its step first (fraud arrives at an almost constant rate), then its balance: the untouched
    initial balance of a new client with the step's `untouched_victim_share`, otherwise a balance that has moved
    (`paysim_model.VICTIMS`). Returns the chunks and each victim's step.
    """
    rng, step_rng = streams["fraud"], streams["fraud_steps"]
    steps = month_steps(scenario.start_step)
    weights = step_weights(scenario.start_step, fraud=True)
    untouched_share = untouched_victim_share(scenario.start_step, support_seed=support_seed)
    batch = max(16, target_rows // 2)
    balances = np.zeros(0, dtype=np.int64)
    victim_step = np.zeros(0, dtype=np.int64)
    while True:
        step = step_rng.choice(steps, size=batch, p=weights)
        drawn = pm.victim_balances(rng, batch)
        whole = rng.random(batch) < pm.VICTIMS.integer_share
        cents = np.where(whole, np.round(drawn) * 100, np.round(drawn * 100)).astype(np.int64)
        untouched = np.flatnonzero(rng.random(batch) < untouched_share[step - scenario.start_step])
        cents[untouched] = pm.table_balances(rng, pm.UNTOUCHED_VICTIM_BALANCES, len(untouched))
        balances = np.concatenate([balances, np.maximum(cents, 1)])
        victim_step = np.concatenate([victim_step, step])
        if scenario.fraud_pattern == "smurfing":
            chunks = smurfing(rng, balances, scenario.smurf_chunks, scenario.smurf_chunk_max)
        else:
            chunks = takeover(balances)
        cumulative = np.cumsum(2 * np.bincount(chunks.victim, minlength=len(balances)))
        if target_rows == 0 or cumulative[-1] >= target_rows:
            break
        batch *= 2
    victims = int(np.searchsorted(cumulative, target_rows, side="right"))
    keep = chunks.victim < victims
    return Chunks(*(getattr(chunks, f.name)[keep] for f in fields(Chunks))), victim_step[:victims]


def fraud_rows(chunks: Chunks, victim_step: IntArray, streams: dict[str, np.random.Generator]) -> FraudRows:
    """Each transfer of `chunks` to a fresh mule, followed by the mule's CASH_OUT, in the victim's step."""
    n = len(chunks)
    dests = streams["fraud_dests"]
    step = victim_step[chunks.victim]
    cashout = chunks.mule_cashout
    # The mule is emptied by its cash-out before the step is written, unless a later payment of the same step
    # picked it as its destination.
    reused = (dests.random(n) < pm.MULE_REUSED_SHARE) & ~chunks.flagged
    reused_amount = pm.to_cents(pm.legit_amounts(dests, "CASH_OUT", n))
    # The mule cashes out to any client; many have no money yet.
    fresh = dests.random(n) < pm.FRAUD_CASHOUT_FRESH_DEST
    fresh_zero = dests.random(n) < pm.FRESH_DEST_ZERO_SHARE
    transfer = Rows(
        step=step,
        type=_full(pm.TRANSFER, n),
        amount=chunks.amount,
        old_org=chunks.old,
        new_org=chunks.new,
        dest_kind=_full(MULE, n),
        dest_new=np.where(reused, reused_amount, 0),
        fraud=_full(1, n),
        flagged=chunks.flagged.astype(np.int8),
    )
    cash_out = Rows(
        step=step,
        type=_full(pm.CASH_OUT, n),
        amount=cashout,
        old_org=cashout,
        new_org=np.zeros(n, dtype=np.int64),
        dest_kind=np.where(fresh, FRESH, POOL).astype(np.int8),
        dest_new=np.where(fresh_zero, 0, cashout),
        fraud=_full(1, n),
        flagged=_full(0, n),
    )
    return FraudRows(
        rows=Rows.concat([transfer, cash_out]),
        unit=np.concatenate([chunks.victim, chunks.victim]),
        sub=np.concatenate([2 * chunks.seq, 2 * chunks.seq + 1]),
    )


def aftermath_rows(counts: dict[str, int], scenario: Scenario, rng: np.random.Generator, first_unit: int) -> FraudRows:
    """Drained victims' own later CASH_OUTs and TRANSFERs, which the simulator also labels fraudulent."""
    parts = []
    weights = step_weights(scenario.start_step, fraud=True)
    for name, count in counts.items():
        amount = pm.to_cents(pm.legit_amounts(rng, name, count))
        refilled = pm.table_balances(rng, pm.ORIGIN_BALANCES[name], count)
        old = np.where(rng.random(count) < pm.VICTIM_AFTERMATH_DRAINED, 0, refilled)
        parts.append(
            Rows(
                step=rng.choice(month_steps(scenario.start_step), size=count, p=weights),
                type=_full(pm.TYPE_CODES[name], count),
                amount=amount,
                old_org=old,
                new_org=np.maximum(old - amount, 0),
                dest_kind=_full(POOL, count),
                dest_new=np.zeros(count, dtype=np.int64),
                fraud=_full(1, count),
                flagged=_full(0, count),
            )
        )
    rows = Rows.concat(parts)
    return FraudRows(rows, first_unit + np.arange(len(rows), dtype=np.int64), np.zeros(len(rows), dtype=np.int64))


def merge(legit: Rows, fraud: FraudRows, rng: np.random.Generator) -> Rows:
    """Insert the fraudulent units at random places among the legitimate rows of their step.

    Legitimate rows are already sorted by step and randomly ordered within it, so instead of sorting the whole
    month, each fraud unit (a victim's transfer/cash-out sequence, kept together as in the real log) gets a
    random insertion point inside its step and everything is scattered into place in one pass.
    """
    n_fraud = len(fraud.rows)
    if n_fraud == 0:
        return legit
    first = np.searchsorted(legit.step, fraud.rows.step, side="left")
    last = np.searchsorted(legit.step, fraud.rows.step, side="right")
    units = int(fraud.unit.max()) + 1
    draw = rng.random(units)[fraud.unit]  # one insertion point per unit
    insert = first + np.floor(draw * (last - first + 1)).astype(np.int64)
    order = np.lexsort((fraud.sub, fraud.unit, draw, fraud.rows.step, insert))
    insert = insert[order]
    total = len(legit) + n_fraud
    fraud_pos = insert + np.arange(n_fraud)
    legit_pos = np.arange(len(legit)) + np.cumsum(np.bincount(insert, minlength=len(legit) + 1))[: len(legit)]
    merged = {}
    for f in fields(Rows):
        values = getattr(legit, f.name)
        out = np.empty(total, dtype=values.dtype)
        out[legit_pos] = values
        out[fraud_pos] = getattr(fraud.rows, f.name)[order]
        merged[f.name] = out
    return Rows(**merged)
