"""When transactions happen: per-step weights whose hour-of-day and day-of-month marginals are the published ones.

The published tables give rows (and frauds) per hour of day and per day of month, not per step. The per-step
volume is the 31 x 24 day-by-hour matrix that matches both marginals and is otherwise as uniform as possible:
iterative proportional fitting from a matrix of ones. Its structural zeros follow the calendar: steps run from 1
to 743, with hour = step % 24 and day = (step - 1) // 24 + 1, so day 1 has hours 1..23 and then hour 0 (step
24), while day 31 stops at hour 23 (step 743) and has no hour 0. Legitimate and fraudulent volumes get one matrix
each: legitimate volume follows the strong daily cycle, fraud arrives at an almost constant rate.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import numpy.typing as npt

from fraud.data.published import DAYS, load_published
from fraud.schema import HOURS_PER_DAY, MAX_STEP

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

MONTH_STEPS = MAX_STEP
"""Steps in one generated month (the published log's 743)."""


def ipf(day_totals: FloatArray, hour_totals: FloatArray, support: FloatArray, iterations: int = 500) -> FloatArray:
    """The day x hour matrix with the given marginals and zeros outside `support` (iterative proportional fit)."""
    matrix = support.astype(np.float64).copy()
    for _ in range(iterations):
        rows = matrix.sum(axis=1)
        matrix *= np.divide(day_totals, rows, out=np.zeros_like(rows), where=rows > 0)[:, None]
        cols = matrix.sum(axis=0)
        matrix *= np.divide(hour_totals, cols, out=np.zeros_like(cols), where=cols > 0)[None, :]
        if np.allclose(matrix.sum(axis=1), day_totals, rtol=1e-10, atol=1e-6):
            break
    return matrix


def _calendar_support() -> FloatArray:
    support = np.zeros((DAYS, HOURS_PER_DAY))
    steps = np.arange(1, MAX_STEP + 1)
    support[(steps - 1) // HOURS_PER_DAY, steps % HOURS_PER_DAY] = 1.0
    return support


@cache
def _matrices() -> tuple[FloatArray, FloatArray]:
    published = load_published()
    support = _calendar_support()
    daily_legit = np.array(published.daily_rows, dtype=np.float64) - np.array(published.daily_fraud)
    hourly_legit = np.array(published.hourly_rows, dtype=np.float64) - np.array(published.hourly_fraud)
    legit = ipf(daily_legit, hourly_legit, support)
    fraud = ipf(
        np.array(published.daily_fraud, dtype=np.float64), np.array(published.hourly_fraud, dtype=np.float64), support
    )
    return legit, fraud


def month_steps(start_step: int = 1) -> IntArray:
    """The steps of a generated month starting at `start_step`."""
    return np.arange(start_step, start_step + MONTH_STEPS, dtype=np.int64)


def step_weights(start_step: int = 1, *, fraud: bool = False) -> FloatArray:
    """Probability of each step of the month (see `month_steps`) for a legitimate or a fraudulent row.

    A window that starts later keeps the daily cycle of the clock (hour = step % 24) and the day-of-month profile
    relative to its own first step, so "next month" looks like the published month shifted in time.
    """
    legit, fraud_matrix = _matrices()
    matrix = fraud_matrix if fraud else legit
    steps = month_steps(start_step)
    day_index = (steps - start_step) // HOURS_PER_DAY
    weights = matrix[day_index, steps % HOURS_PER_DAY]
    if start_step != 1:
        # The calendar's own zero cell (day 31, hour 0) may fall elsewhere in a shifted window; keep every step
        # of the window possible by borrowing the weight of the same hour on the previous day.
        empty = weights == 0
        weights[empty] = matrix[np.maximum(day_index[empty] - 1, 0), steps[empty] % HOURS_PER_DAY]
    total = weights.sum()
    result: FloatArray = weights / total
    return result
