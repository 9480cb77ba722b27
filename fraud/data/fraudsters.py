"""What fraudsters do to a victim's account, vectorised over victims.

The published log's fraud is PaySim's account takeover, whose rules live in the simulator's source
(EdgarLopezPhD/PaySim, ``src/paysim/Fraudster.java`` and ``Client.java`` of the version that produced the
Kaggle log):

* ``Fraudster.step``: take a random client with a positive balance; for ``ceil(balance / transferLimit)``
  rounds, transfer ``min(remaining, transferLimit)`` to a brand-new mule account, then the mule cashes out its
  whole balance; stop once the victim's balance is 0.
* ``Client.handleTransfer`` runs ``checkBalanceDropping`` first: during an account's first three transfers it
  only records the highest balance seen; from the fourth on, a transfer that would leave the balance more than
  ``2.5 * transferLimit`` below that highest balance is *flagged* (``isFlaggedFraud = 1``) and blocked: the row
  is written but no money moves, so ``newbalanceOrig == oldbalanceOrg`` and the mule then cashes out 0.

That rule, not the data card's "more than 200,000 in a single transaction", is why the month has only 16 flagged
rows, all fraudulent TRANSFERs: only victims holding more than 30M (four or more 10M chunks) can trip it.
Victims' earlier legitimate transfers, which could also count towards the three, are not modelled (in the
published log every origin id is practically fresh, so they are invisible anyway).

The smurfing pattern (a scenario, not in the published log) drains a victim with many small transfers instead,
each below a threshold, which never trips the rule above and breaks the "amount == old balance" artefact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fraud.data.paysim_model import FLAG_DROP_FACTOR, FLAG_MIN_TRANSFERS, TRANSFER_LIMIT

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

LIMIT_CENTS = round(TRANSFER_LIMIT * 100)


@dataclass(frozen=True)
class Chunks:
    """One row per fraudulent transfer (each is followed by its mule's CASH_OUT of ``mule_cashout`` cents)."""

    victim: IntArray
    """Index of the victim (into the balances the pattern was given)."""
    seq: IntArray
    """Position of the transfer in the victim's sequence, from 0."""
    amount: IntArray
    old: IntArray
    new: IntArray
    flagged: BoolArray

    @property
    def mule_cashout(self) -> IntArray:
        """What the mule holds and cashes out: the amount, or 0 when the transfer was blocked."""
        result: IntArray = np.where(self.flagged, 0, self.amount)
        return result

    def __len__(self) -> int:
        return len(self.amount)


def _collect(parts: list[tuple[IntArray, int, IntArray, IntArray, IntArray, BoolArray]]) -> Chunks:
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return Chunks(empty, empty, empty, empty, empty, np.zeros(0, dtype=bool))
    victim = np.concatenate([p[0] for p in parts])
    seq = np.concatenate([np.full(len(p[0]), p[1], dtype=np.int64) for p in parts])
    order = np.lexsort((seq, victim))
    return Chunks(
        victim=victim[order],
        seq=seq[order],
        amount=np.concatenate([p[2] for p in parts])[order],
        old=np.concatenate([p[3] for p in parts])[order],
        new=np.concatenate([p[4] for p in parts])[order],
        flagged=np.concatenate([p[5] for p in parts])[order],
    )


def takeover(balances: IntArray) -> Chunks:
    """The simulator's account takeover for victims holding `balances` cents (see the module docstring)."""
    balance = balances.astype(np.int64).copy()  # the victim's real balance
    remaining = balance.copy()  # the fraudster's own running count (it goes down even when a transfer is blocked)
    loops = -(-balance // LIMIT_CENTS)  # ceil
    highest = np.zeros_like(balance)
    counted = np.zeros_like(balance)
    active = balance > 0
    parts: list[tuple[IntArray, int, IntArray, IntArray, IntArray, BoolArray]] = []
    step = 0
    while active.any():
        idx = np.flatnonzero(active)
        amount = np.minimum(remaining[idx], LIMIT_CENTS)
        old = balance[idx]
        checking = counted[idx] >= FLAG_MIN_TRANSFERS
        flagged = checking & (highest[idx] - old - amount > FLAG_DROP_FACTOR * LIMIT_CENTS)
        learning = idx[~checking]
        counted[learning] += 1
        highest[learning] = np.maximum(highest[learning], balance[learning])
        new = np.where(flagged, old, np.maximum(old - amount, 0))
        balance[idx] = new
        remaining[idx] -= amount
        parts.append((idx.astype(np.int64), step, amount, old, new, flagged))
        step += 1
        active[idx] = (step < loops[idx]) & (new > 0)
    return _collect(parts)


def smurfing(rng: np.random.Generator, balances: IntArray, chunks: int, chunk_max: float) -> Chunks:
    """Drain each victim with up to `chunks` transfers of 50-100% of `chunk_max` each (the last may be smaller)."""
    balance = balances.astype(np.int64).copy()
    top = max(round(chunk_max * 100), 2)
    parts: list[tuple[IntArray, int, IntArray, IntArray, IntArray, BoolArray]] = []
    for step in range(chunks):
        idx = np.flatnonzero(balance > 0)
        if idx.size == 0:
            break
        wanted = rng.integers(top // 2, top + 1, idx.size)
        old = balance[idx]
        amount = np.minimum(wanted, old)
        new = old - amount
        balance[idx] = new
        parts.append((idx.astype(np.int64), step, amount, old, new, np.zeros(idx.size, dtype=bool)))
    return _collect(parts)
