"""Destination accounts: who receives each row, and the destination balances the simulator writes.

Customer destinations repeat (2,722,362 distinct destinations in 6,362,620 rows, merchants included): each row
picks an account from a pool with lognormal popularity, the pool sized so that the distinct-destination ratio of
the published month holds at any number of rows. Merchants (PAYMENT only) and fraud mules are one-off ids.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from fraud.data import paysim_model as pm
from fraud.data.balances import floored_running_balances, group_starts
from fraud.data.rows import Rows

IntArray = npt.NDArray[np.int64]

_HERMITE = np.polynomial.hermite_e.hermegauss(64)


def expected_distinct(draws: float, pool: float, sigma: float) -> float:
    """Expected number of accounts hit by `draws` picks from `pool` accounts with lognormal(sigma) popularity."""
    nodes, weights = _HERMITE
    rate = draws / pool * np.exp(sigma * nodes - sigma**2 / 2)
    return float(pool * np.sum(weights / weights.sum() * -np.expm1(-rate)))


def pool_size(draws: int, target_distinct: float, sigma: float = pm.DEST_POPULARITY_SIGMA) -> int:
    """Number of customer accounts so that `draws` picks hit about `target_distinct` distinct ones (bisection)."""
    if draws == 0:
        return 1
    target = min(max(target_distinct, 1.0), 0.999 * draws)
    low, high = np.log(target), np.log(draws * 1e4)
    for _ in range(60):
        mid = (low + high) / 2
        if expected_distinct(draws, float(np.exp(mid)), sigma) < target:
            low = mid
        else:
            high = mid
    return max(int(np.exp(high)), 1)


def pick_accounts(rng: np.random.Generator, draws: int, pool: int) -> IntArray:
    """Account of each of `draws` rows, by popularity: how many rows each account gets, then which rows."""
    popularity = np.exp(pm.DEST_POPULARITY_SIGMA * rng.standard_normal(pool))
    received = rng.multinomial(draws, popularity / popularity.sum())
    return rng.permutation(np.repeat(np.arange(pool, dtype=np.int64), received))


def pool_balances(
    rows: Rows, pool_rows: IntArray, account: IntArray, pool: int, rng: np.random.Generator
) -> tuple[IntArray, IntArray]:
    """``oldbalanceDest`` and ``newbalanceDest`` of the rows paid into pool accounts (`pool_rows`, in log order).

    Each account runs its balance through its rows in log order (CASH_IN takes money out of the destination, the
    other types put it in, and withdrawals floor at zero), so ``oldbalanceDest`` chains from row to row within a
    step as in the real log. ``newbalanceDest`` is the simulator's end-of-step snapshot of the live account, the
    same for all the account's rows of that step. When the account also moved money under other ids in that step
    (`paysim_model.DEST_SNAPSHOT_OK`), the snapshot is its balance after that activity, drawn afresh, and the
    account continues from there in later steps.
    """
    n = len(rows)
    keys = np.sort(account * n + pool_rows)  # by account, then log order (keys are unique)
    acc, index = np.divmod(keys, n)
    flows = np.where(rows.type[index] == pm.CASH_IN, -rows.amount[index], rows.amount[index])
    account_start = group_starts(acc)
    group_start = account_start | group_starts(rows.step[index])
    group_id = np.cumsum(group_start) - 1
    first = np.flatnonzero(group_start)
    size = np.diff(np.append(first, len(acc)))
    groups = len(first)
    consistent, decay = pm.DEST_SNAPSHOT_OK
    hidden = rng.random(groups) >= consistent * decay ** (size - 1)
    reset = pm.table_balances(rng, pm.DEST_RESET_BALANCES, groups)
    # A hidden movement ends a run of consistent balances: the account's next rows start from the reset value.
    resumes = np.zeros(groups, dtype=bool)
    resumes[1:] = hidden[:-1] & ~account_start[first[1:]]
    segment_start = account_start.copy()
    segment_start[first[resumes]] = True
    opening = pm.table_balances(rng, pm.DEST_INITIAL_BALANCES, pool)[acc[segment_start]]
    opening[resumes[group_id[segment_start]]] = reset[np.flatnonzero(resumes) - 1]
    before, after = floored_running_balances(flows, segment_start, opening)
    end_of_rows = after[first + size - 1]
    snapshot = np.where(hidden, reset, end_of_rows)
    # An account that starts the step empty and receives money is rarely empty again when the step is written.
    empty_again = rng.random(groups) < pm.DEST_EMPTY_ZERO_TO_ZERO
    keep = (before[first] == 0) & (snapshot == 0) & ~empty_again
    snapshot[keep] = end_of_rows[keep]
    old = np.empty(n, dtype=np.int64)
    new = np.empty(n, dtype=np.int64)
    old[index] = before
    new[index] = snapshot[group_id]
    return old[pool_rows], new[pool_rows]
