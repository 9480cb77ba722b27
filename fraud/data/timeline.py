"""When transactions happen: per-step weights whose hour-of-day and day-of-month marginals are the published ones.

The published tables give rows (and frauds) per hour of day and per day of month, not per step. Steps run from 1
to 743, with hour = step % 24 and day = (step - 1) // 24 + 1, so day 1 has hours 1..23 and then hour 0 (step 24),
while day 31 stops at hour 23 (step 743) and has no hour 0: the calendar's structural zero.

Fraud arrives at an almost constant rate: its per-step volume is the 31 x 24 day-by-hour matrix that matches both
fraud marginals and is otherwise as uniform as possible (iterative proportional fitting, IPF, from a matrix of
ones on the calendar).

Legitimate volume does not fill every hour of every day. PaySim replays the real operator's aggregates per (type,
day, hour) and creates legitimate clients only where it has them, while its fraudsters act at every step. The
published log therefore has whole hours with fraud only: 320 of its 743 steps, and nothing legitimate after step
718 (day 31 is all fraud). They are not only night hours: the operator's data has gaps (days 3-5 are almost
empty: 760, 28k and 9.5k legitimate rows against 400k on a full day), and the quiet late days (18-30, 8k-58k rows
each) spread their small volume over about half of their hours. A smooth product-form matrix would instead give
every hour of every day its share of the daily cycle, so that the hour-of-day risk learnt on the first two weeks
would carry over unchanged to the sparse end of the month: fraud would be easier to find than in the real log.

So the legitimate matrix is fitted on a sparse support, drawn per month from its own random stream
(`legit_support`):

* the number of active hours of a day grows with the day's published legitimate volume (`ACTIVE_HOURS_PER_DECADE`
  per factor ten), shifted so that the month has the published number of active steps (743 - 320 = 423) in
  expectation: about 17 of 24 hours on a full day, 9-13 on a quiet late day, 5 on day 3;
* which hours: each hour of day has an activity (`hour_activity`), evenings and early night high, 4-8 h low;
  a day's intensity is set so that its expected number of active hours is the one above, and exactly that many
  hours (rounded at random) are drawn without replacement, the more active hours first;
* the first day is complete (`FIRST_DAY_ACTIVE`), nothing legitimate happens after the published last legitimate
  step (718), which is itself active, and every hour of day is active on at least one busy day, so that the fit
  can give each hour its published total.

IPF restricted to that support then matches both published legitimate marginals (rows minus fraud, per hour and
per day) exactly. A full-size month then has 320 +- 3 fraud-only steps (the inactive steps and the few active ones
that stay empty by chance), and its last legitimate step is 718.

The young month also shapes who the fraudsters rob (`untouched_victim_share`).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final

import numpy as np
import numpy.typing as npt

from fraud.data.published import DAYS, Published, load_published
from fraud.schema import HOURS_PER_DAY, MAX_STEP

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

MONTH_STEPS = MAX_STEP
"""Steps in one generated month (the published log's 743)."""

HOUR_ACTIVITY: Final = (
    20, 23, 17, 12, 4, 3, 4, 4, 4, 4, 9, 8, 15, 23, 18, 16, 20, 12, 20, 20, 24, 24, 25, 24,
)  # fmt: skip
"""Days (of 30) on which each hour of day, 0..23, has legitimate transactions in PaySim's input: the real
operator's aggregates per type, day and hour (EdgarLopezPhD/PaySim, ``paramFiles/AggregateTransaction.csv``, whose
last hour with data is step 718, as in the published log). Only these relative frequencies are used, not the
file's hours themselves: the published log has 423 active steps where the file has 353, and more volume in the
mornings than the file's few morning hours suggest (see `hour_activity`)."""
ACTIVE_HOURS_PER_DECADE: Final = 4.6
"""Active hours a day gains per factor ten of legitimate volume: the slope of the least-squares line of the same
file's active hours per day (22 and 18 on days 1-2, 13-16 on full days, 1, 4 and 3 on days 3-5, 5-15 on the late
days) against the logarithm of the published daily legitimate rows."""
FIRST_DAY_ACTIVE: Final = True
"""Every hour of the first day carries legitimate rows: the genuine head of the log has legitimate rows in each of
steps 1-9 (555 and 659 in the night hours 4 and 5, more than half of those hours' whole-month volume), although
PaySim's input has no data for steps 4 and 5. The simulation's first day is complete; the gaps come later."""
BUSY_DAY_SHARE: Final = 0.1
"""A day is busy when its legitimate volume is at least this share of the busiest day's."""
QUIET_DAY_SHARE: Final = 0.25
"""A day is quiet when its legitimate volume is under this share of the busiest day's. The published days fall
in two groups, 349k-574k rows (days 1-2 and 6-17) and at most 58k (days 3-5 and 18-31); any threshold between
separates them the same way."""
IPF_ITERATIONS: Final = 5000
SUPPORT_CACHE: Final = 16


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


def _calendar_support() -> BoolArray:
    support = np.zeros((DAYS, HOURS_PER_DAY), dtype=bool)
    steps = np.arange(1, MAX_STEP + 1)
    support[(steps - 1) // HOURS_PER_DAY, steps % HOURS_PER_DAY] = True
    return support


def _cell(step: int) -> tuple[int, int]:
    return (step - 1) // HOURS_PER_DAY, step % HOURS_PER_DAY


def _legit_marginals(published: Published) -> tuple[FloatArray, FloatArray]:
    daily = np.array(published.daily_rows, dtype=np.float64) - np.array(published.daily_fraud)
    hourly = np.array(published.hourly_rows, dtype=np.float64) - np.array(published.hourly_fraud)
    return daily, hourly


def _eligible(published: Published) -> BoolArray:
    """Calendar cells up to the published last legitimate step, on days with legitimate volume."""
    eligible = _calendar_support()
    steps = np.arange(1, MAX_STEP + 1)
    late = steps > published.last_legit_step
    eligible[(steps[late] - 1) // HOURS_PER_DAY, steps[late] % HOURS_PER_DAY] = False
    daily, _ = _legit_marginals(published)
    eligible[daily <= 0] = False
    return eligible


@lru_cache(maxsize=1)
def hour_activity() -> FloatArray:
    """How often each hour of day carries legitimate rows on an average day: as often as in PaySim's input
    (`HOUR_ACTIVITY`), and at least in proportion to the hour's volume relative to the busiest hour's (the log's
    late mornings, 10-12 h, hold as much legitimate volume as its afternoons although the input has data for them
    on 8-15 days only: the simulator fills hours the input lacks, as the genuine head's steps 4 and 5 show)."""
    _, hourly = _legit_marginals(load_published())
    frequency = np.asarray(HOUR_ACTIVITY, dtype=np.float64) / 30.0
    result: FloatArray = np.clip(np.maximum(frequency, hourly / hourly.max()), 0.0, 1.0 - 1e-6)
    return result


def _activity(intensity: FloatArray) -> FloatArray:
    """Probability that each hour of day is active, for days of the given intensities (days x hours)."""
    result: FloatArray = 1.0 - (1.0 - hour_activity()[None, :]) ** intensity[:, None]
    return result


def _intensities(wanted: FloatArray, eligible: BoolArray) -> FloatArray:
    """Per day, the intensity whose expected number of active eligible hours is `wanted` (bisection)."""
    low = np.full(len(wanted), 1e-6)
    high = np.full(len(wanted), 1e3)
    for _ in range(80):
        middle = np.sqrt(low * high)
        expected = (_activity(middle) * eligible).sum(axis=1)
        too_many = expected > wanted
        high = np.where(too_many, middle, high)
        low = np.where(too_many, low, middle)
    result: FloatArray = np.sqrt(low * high)
    return result


@lru_cache(maxsize=1)
def _expected_active_hours() -> FloatArray:
    """Expected active hours per day: `ACTIVE_HOURS_PER_DECADE` per factor ten of volume, shifted so that the
    month has the published number of active steps (743 - fraud-only steps) in expectation."""
    published = load_published()
    eligible = _eligible(published)
    daily, _ = _legit_marginals(published)
    slope = np.where(daily > 0, ACTIVE_HOURS_PER_DECADE * np.log10(np.maximum(daily, 1.0)), 0.0)
    target = MAX_STEP - published.fraud_only_steps
    available = eligible.sum(axis=1).astype(np.float64)
    forced = np.zeros(len(daily), dtype=bool)
    forced[0] = FIRST_DAY_ACTIVE

    def wanted(shift: float) -> FloatArray:
        hours: FloatArray = np.where(
            forced, available, np.where(daily > 0, np.clip(slope + shift, 1.0, available), 0.0)
        )
        return hours

    low, high = -100.0, 100.0
    for _ in range(80):
        shift = (low + high) / 2
        low, high = (shift, high) if wanted(shift).sum() < target else (low, shift)
    return wanted((low + high) / 2)


def legit_support(rng: np.random.Generator) -> BoolArray:
    """The day x hour cells that carry legitimate transactions in one month (see the module docstring)."""
    published = load_published()
    eligible = _eligible(published)
    wanted = _expected_active_hours()
    probability = np.clip(_activity(_intensities(wanted, eligible)) * eligible, 0.0, 1.0 - 1e-9)
    # Exactly `count` hours a day (the expected number, rounded at random), drawn without replacement with odds
    # p / (1 - p) as weights (Efraimidis-Spirakis keys u ** (1 / w)), so that busier hours are picked first.
    count = np.floor(wanted + rng.random(len(wanted))).astype(np.int64)
    odds = probability / (1.0 - probability)
    keys = np.where(eligible, np.log(1.0 - rng.random(eligible.shape)) / np.maximum(odds, 1e-12), -np.inf)
    rank = np.argsort(np.argsort(-keys, axis=1), axis=1)
    support = eligible & (rank < count[:, None])
    support[_cell(published.last_legit_step)] = True
    # Each hour of day gets a busy day, so that IPF can give it its published total.
    daily, _ = _legit_marginals(published)
    busy = daily >= BUSY_DAY_SHARE * daily.max()
    draws = rng.random(HOURS_PER_DAY)
    for hour in np.flatnonzero(~(support & busy[:, None]).any(axis=0)):
        days = np.flatnonzero(busy & eligible[:, hour])
        weights = np.cumsum(daily[days])
        support[days[np.searchsorted(weights, draws[hour] * weights[-1], side="right")], hour] = True
    return support


@lru_cache(maxsize=1)
def _fraud_matrix() -> FloatArray:
    published = load_published()
    return ipf(
        np.array(published.daily_fraud, dtype=np.float64),
        np.array(published.hourly_fraud, dtype=np.float64),
        _calendar_support().astype(np.float64),
    )


@lru_cache(maxsize=SUPPORT_CACHE)
def legit_matrix(support_seed: int) -> FloatArray:
    """Expected legitimate rows per day x hour cell of the published month, for the support drawn from the seed."""
    published = load_published()
    support = legit_support(np.random.default_rng(support_seed))
    daily, hourly = _legit_marginals(published)
    return ipf(daily, hourly, support.astype(np.float64), IPF_ITERATIONS)


def month_steps(start_step: int = 1) -> IntArray:
    """The steps of a generated month starting at `start_step`."""
    return np.arange(start_step, start_step + MONTH_STEPS, dtype=np.int64)


def step_weights(start_step: int = 1, *, fraud: bool = False, support_seed: int = 0) -> FloatArray:
    """Probability of each step of the month (see `month_steps`) for a legitimate or a fraudulent row.

    `support_seed` selects the month's legitimate support (which hours carry legitimate transactions); fraud
    weights do not depend on it. A window that starts later keeps the daily cycle of the clock (hour = step % 24)
    and the day-of-month profile relative to its own first step, so "next month" looks like the published month
    shifted in time.
    """
    matrix = _fraud_matrix() if fraud else legit_matrix(support_seed)
    steps = month_steps(start_step)
    day_index = (steps - start_step) // HOURS_PER_DAY
    weights = matrix[day_index, steps % HOURS_PER_DAY]
    if fraud and start_step != 1:
        # The calendar's own zero cell (day 31, hour 0) may fall elsewhere in a shifted window; fraud arrives at
        # every step, so borrow the weight of the same hour on the previous day.
        empty = weights == 0
        weights[empty] = matrix[np.maximum(day_index[empty] - 1, 0), steps[empty] % HOURS_PER_DAY]
    total = weights.sum()
    result: FloatArray = weights / total
    return result


def quiet_steps(start_step: int = 1) -> BoolArray:
    """Per step of the month (see `month_steps`), whether its day is a quiet one: legitimate volume under
    `QUIET_DAY_SHARE` of the busiest day's (days 3-5 and 18-31 of the published month).

    PaySim's input data for the quiet days comes from thin, irregular operator hours whose amount levels scatter
    far more than the busy days' (`paysim_model.STEP_LEVELS`). Like `step_weights`, a later window keeps the
    day-of-month profile relative to its own first step.
    """
    daily, _ = _legit_marginals(load_published())
    day_index = (month_steps(start_step) - start_step) // HOURS_PER_DAY
    result: BoolArray = daily[day_index] < QUIET_DAY_SHARE * daily.max()
    return result


def untouched_victim_share(start_step: int = 1, *, support_seed: int = 0) -> FloatArray:
    """Per step of the month, the share of fraud victims that still hold their untouched initial balance.

    PaySim's fraudsters take over a random client of its list of clients (``PaySim.getRandomClient``). The list
    grows by the clients the manager creates at each step (in proportion to the legitimate volume), and a new
    client only acts, and so moves its balance, at the next step (MASON ``scheduleOnce``); within a step the
    manager and the fraudsters run in random order. A victim is therefore untouched when it was created in this
    step (and the manager ran first, probability 1/2) or in the previous one (and has not acted yet, 1/2):

        share(t) = (v(t) + v(t - 1)) / (v(t) + 2 V(t - 1)),

    with v the legitimate volume of a step and V the cumulative volume before it. It is large only while the
    list is young: 1 at the first step, about 0.44 on average over the frauds of steps 1-9 with the published
    log's volumes, under 1% after the first day. That predicts, with no free parameter, the whole-number
    balances of the genuine head's victims (an untouched initial balance is whole in 87% of cases): 0.39 of
    its fraudulent transfers, against 16 of 46 (0.35) observed. A later window (``start_step`` > 1) continues a
    month whose clients already exist, so its share stays near zero.
    """
    volume = step_weights(start_step, support_seed=support_seed)
    before = np.cumsum(volume) - volume + (0.0 if start_step == 1 else 1.0)
    previous = np.concatenate([[0.0], volume[:-1]])
    denominator = volume + 2.0 * before
    result: FloatArray = np.divide(volume + previous, denominator, out=np.ones_like(volume), where=denominator > 0)
    return np.minimum(result, 1.0)
