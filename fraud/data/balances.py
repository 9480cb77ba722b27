"""Running account balances that never go below zero, for many accounts at once, without a Python loop.

PaySim's ``withdraw`` floors a balance at zero (``if (balance < amount) balance = 0``), so an account's balance
after its k-th movement is the Lindley recursion ``b_k = max(b_{k-1} + x_k, 0)`` from its opening balance
``b_0``. Written with the running sum ``S_k = x_1 + ... + x_k`` it has a closed form,

    b_k = S_k + max(b_0, -S_1, -S_2, ..., -S_k),

so a cumulative sum and a cumulative maximum per account give every balance. Both are computed for all accounts in
one pass over the concatenated sequences: the cumulative sum restarts at account boundaries by subtraction, and the
cumulative maximum is kept from leaking across boundaries by adding to each account's values an offset larger
than anything before it. Everything is in integer cents, so the offsets are exact.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def group_starts(keys: IntArray) -> BoolArray:
    """True where a run of equal consecutive `keys` begins."""
    starts = np.ones(len(keys), dtype=bool)
    starts[1:] = keys[1:] != keys[:-1]
    return starts


def floored_running_balances(flows: IntArray, starts: BoolArray, opening: IntArray) -> tuple[IntArray, IntArray]:
    """Balances before and after each movement of accounts laid out one after another.

    Args:
        flows: signed movements in cents, each account's movements contiguous and in order.
        starts: True at the first movement of each account.
        opening: each account's opening balance in cents (>= 0), one per True in `starts`.

    Returns:
        (before, after): the balance before and after each movement, floored at zero.
    """
    n = len(flows)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    account = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    total = np.cumsum(flows)
    running = total - (total[first] - flows[first])[account]  # S_k within each account
    values = -running
    values[first] = np.maximum(opening, values[first])
    # Offsets that keep each account's values above every earlier account's values.
    highs = np.maximum.reduceat(values, first)
    lows = np.minimum.reduceat(values, first)
    offsets = np.zeros(len(first), dtype=np.int64)
    offsets[1:] = np.cumsum(highs[:-1] - lows[1:] + 1)
    shift = offsets[account]
    peak = np.maximum.accumulate(values + shift) - shift
    after = running + peak
    before = np.empty_like(after)
    before[1:] = after[:-1]
    before[first] = opening
    return before, after
